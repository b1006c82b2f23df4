"""Real, decodable media bytes for the emulators' outputs.

Outputs are small gradients seeded by the request, rendered with Pillow and cached, so the
emulators answer fast and tests can decode what they get.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, UnidentifiedImageError

_FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    uniform: bool
    """All pixels one colour: the emulators' reading of 'no face in this picture'."""


def content_type(fmt: str) -> str:
    return _FORMATS[fmt][1]


@lru_cache(maxsize=256)
def render(width: int, height: int, fmt: str = "png", seed: int = 0, alpha: bool = False) -> bytes:
    """A ``width``×``height`` gradient in ``fmt`` (png, jpeg, webp), tinted by ``seed``."""
    pil_format, _ = _FORMATS[fmt]
    mode = "RGBA" if alpha and fmt != "jpeg" else "RGB"
    tint = seed % 256
    gradient = Image.linear_gradient("L").resize((width, height))
    channels = [
        gradient,
        Image.new("L", (width, height), tint),
        gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    ]
    if mode == "RGBA":
        channels.append(gradient)
    out = io.BytesIO()
    Image.merge(mode, channels).save(out, format=pil_format)
    return out.getvalue()


def inspect(data: bytes) -> ImageInfo | None:
    """Width, height and format of ``data``, or ``None`` when it is not an image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            extrema = img.convert("RGB").getextrema()
            uniform = all(lo == hi for lo, hi in extrema)  # type: ignore[misc]
            return ImageInfo(img.width, img.height, (img.format or "").lower(), uniform)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
