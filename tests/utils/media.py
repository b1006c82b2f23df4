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
