"""Checking media at the edge, before anything is stored, charged or sent upstream."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from app.domain.errors import ErrorCode, InvalidRequest
from app.domain.media import MediaKind
from app.domain.media_structure import av_problem
from app.domain.media_types import sniff_av

MAX_PIXELS_PER_SIDE = 4096
_IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}

Image.MAX_IMAGE_PIXELS = MAX_PIXELS_PER_SIDE * MAX_PIXELS_PER_SIDE


@dataclass(frozen=True)
class CheckedMedia:
    content: bytes
    content_type: str
    width: int | None = None
    height: int | None = None

    @property
    def kind(self) -> MediaKind:
        return MediaKind(self.content_type.split("/")[0])


def decode_base64(data: str, pointer: str, max_bytes: int) -> bytes:
    """Strict base64 (standard alphabet, padding required); a ``data:`` URI prefix is allowed."""
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    if len(data) * 3 // 4 > max_bytes + 3:
        raise _too_large(pointer, max_bytes)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(
            "not valid base64", code=ErrorCode.invalid_base64, pointer=pointer, status=422
        ) from exc


def check_media(
    content: bytes, kind: MediaKind | None, pointer: str, max_bytes: int
) -> CheckedMedia:
    """Media of the expected kind (any kind when None), or a 4xx naming the field."""
    if len(content) > max_bytes:
        raise _too_large(pointer, max_bytes)
    if kind is MediaKind.image:
        return check_image(content, pointer, max_bytes)
    sniffed = sniff_av(content)
    if sniffed is not None and (kind is None or sniffed.startswith(f"{kind}/")):
        problem = av_problem(content, sniffed)
        if problem is not None:
            raise _not_an_image(pointer, f"not a whole {sniffed} file: {problem}")
        return CheckedMedia(content, sniffed)
    if kind is None:
        return check_image(content, pointer, max_bytes)
    accepted = "MP4, MOV, WEBM" if kind is MediaKind.video else "WAV, MP3, OGG, FLAC, M4A"
    raise _not_an_image(pointer, f"the bytes are not a {kind} file ({accepted})")


def check_image(content: bytes, pointer: str, max_bytes: int) -> CheckedMedia:
    """A PNG, JPEG or WEBP image within the size limits, or a 4xx naming the field."""
    if len(content) > max_bytes:
        raise _too_large(pointer, max_bytes)
    if not content:
        raise _not_an_image(pointer, "the media is empty")
    try:
        with Image.open(io.BytesIO(content)) as img:
            fmt, (width, height) = img.format or "", img.size
            img.verify()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        raise _not_an_image(pointer, "the bytes are not a readable image") from exc
    if fmt not in _IMAGE_TYPES:
        raise _not_an_image(pointer, f"{fmt or 'this'} images are not accepted (PNG, JPEG, WEBP)")
    if max(width, height) > MAX_PIXELS_PER_SIDE:
        raise InvalidRequest(
            f"images may be at most {MAX_PIXELS_PER_SIDE} px on a side",
            code=ErrorCode.invalid_media,
            pointer=pointer,
        )
    return CheckedMedia(content, _IMAGE_TYPES[fmt], width, height)


def _too_large(pointer: str, max_bytes: int) -> InvalidRequest:
    return InvalidRequest(
        f"media must be at most {max_bytes} bytes",
        code=ErrorCode.media_too_large,
        pointer=pointer,
        status=413,
    )


def _not_an_image(pointer: str, detail: str) -> InvalidRequest:
    return InvalidRequest(detail, code=ErrorCode.invalid_media, pointer=pointer)
