"""Small real images for requests."""

from __future__ import annotations

import base64
import io

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
