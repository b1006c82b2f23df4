"""Small real images for requests."""

from __future__ import annotations

import base64
import functools
import io
import random

from PIL import Image


def png_bytes(
    width: int = 32, height: int = 32, color: tuple[int, int, int] | None = None
) -> bytes:
    """A PNG; with ``color`` it is one flat colour (the sandbox reads that as 'no face')."""
    if color is not None:
        img = Image.new("RGB", (width, height), color)
    else:
        img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def png_b64(width: int = 32, height: int = 32, color: tuple[int, int, int] | None = None) -> str:
    return base64.b64encode(png_bytes(width, height, color)).decode()


def decode_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@functools.lru_cache(maxsize=4)
def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG of random pixels: it does not compress, so its bytes are about 3 × its pixels
    (2400×1800 is some 13 MB, over a 10 MB limit)."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def mask_png(width: int, height: int) -> bytes:
    """A black-and-white greyscale mask (one white rectangle in the middle)."""
    img = Image.new("L", (width, height), 0)
    img.paste(255, (width // 3, height // 3, 2 * width // 3, 2 * height // 3))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


ORIENTATION = 0x0112
"""The EXIF orientation tag."""
MARK = (0.1, 0.15, 0.35, 0.3)
"""Where :func:`marked_photo` and :func:`marked_mask` put their mark, as fractions of the
stored width and height (left, top, right, bottom): off every axis, so that a turn or a mirror
moves it."""


def _mark(width: int, height: int) -> tuple[int, int, int, int]:
    left, top, right, bottom = MARK
    return (int(left * width), int(top * height), int(right * width), int(bottom * height))


def _tagged(img: Image.Image, fmt: str, orientation: int | None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    out = io.BytesIO()
    img.save(out, format=fmt, exif=exif.tobytes())
    return out.getvalue()


def marked_photo(width: int, height: int, orientation: int | None = None) -> bytes:
    """A dark JPEG with one white block (:data:`MARK`) in its stored pixels, optionally with
    an EXIF orientation tag."""
    img = Image.new("RGB", (width, height), (40, 40, 40))
    img.paste((255, 255, 255), _mark(width, height))
    return _tagged(img, "JPEG", orientation)


def marked_mask(width: int, height: int, orientation: int | None = None) -> bytes:
    """A black greyscale PNG mask, white over :data:`MARK` of its stored pixels, optionally
    with an EXIF orientation tag."""
    img = Image.new("L", (width, height), 0)
    img.paste(255, _mark(width, height))
    return _tagged(img, "PNG", orientation)


def mark_of(data: bytes) -> tuple[float, float, float, float]:
    """Where a picture's bright part lies in its pixels as stored, as fractions of its width
    and height (left, top, right, bottom)."""
    img = decode_image(data)
    box = img.convert("L").point(lambda value: 255 if value > 128 else 0).getbbox()
    assert box is not None, "no bright part"
    width, height = img.size
    return (box[0] / width, box[1] / height, box[2] / width, box[3] / height)


def lined_up(picture: bytes, mask: bytes) -> bool:
    """The mask has the picture's pixel size and its white part covers the picture's mark
    (within 2 % of a side: JPEG and scaling blur the edges)."""
    if decode_image(picture).size != decode_image(mask).size:
        return False
    return all(abs(a - b) <= 0.02 for a, b in zip(mark_of(picture), mark_of(mask), strict=True))


def orientation_of(data: bytes) -> int:
    """A picture's EXIF orientation (1 without a tag)."""
    value = decode_image(data).getexif().get(ORIENTATION, 1)
    assert isinstance(value, int)
    return value
