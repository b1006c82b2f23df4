"""Checking media at the edge, before anything is stored, charged or sent upstream.

Audio and video are sniffed (``media_types.sniff_av``), walked from the first byte to the last
(``media_structure.av_problem``) and, for AVI and MPEG, which have no structure to walk here,
opened by FFmpeg (``media_probe``), which must find a stream of the expected kind. Which types,
sizes and durations each provider takes is checked after (``app.jobs.media_rules``)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from PIL import Image, UnidentifiedImageError

from app.domain.errors import ErrorCode, InvalidRequest
from app.domain.media import MediaInput, MediaKind
from app.domain.media_probe import probe
from app.domain.media_structure import av_problem
from app.domain.media_types import sniff_av
from app.domain.operations import Params
from app.jobs.prices.measure import SeenMedia
from app.jobs.probe import duration_s
from app.safe_urls import UrlPolicy
from app.store.files import BlobMeta, FileIndex

MAX_PIXELS_PER_SIDE = 4096
_READ_BY_FFMPEG = frozenset({"video/x-msvideo", "video/mpeg"})
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
        raise media_too_large(pointer, max_bytes)
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
        raise media_too_large(pointer, max_bytes)
    if kind is MediaKind.image:
        return check_image(content, pointer, max_bytes)
    sniffed = sniff_av(content)
    if sniffed is not None and (kind is None or sniffed.startswith(f"{kind}/")):
        problem = av_problem(content, sniffed)
        if problem is None and sniffed in _READ_BY_FFMPEG:
            info = probe(content)
            if info is None or not info.holds(sniffed.split("/")[0]):
                problem = "FFmpeg does not read a stream in it"
        if problem is not None:
            raise _not_an_image(pointer, f"not a whole {sniffed} file: {problem}")
        return CheckedMedia(content, sniffed)
    if kind is None:
        return check_image(content, pointer, max_bytes)
    accepted = (
        "MP4, MOV, WEBM, AVI, MPEG" if kind is MediaKind.video else "WAV, MP3, OGG, FLAC, M4A"
    )
    raise _not_an_image(pointer, f"the bytes are not a {kind} file ({accepted})")


def check_image(content: bytes, pointer: str, max_bytes: int) -> CheckedMedia:
    """A PNG, JPEG or WEBP image within the size limits, or a 4xx naming the field."""
    if len(content) > max_bytes:
        raise media_too_large(pointer, max_bytes)
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


def media_too_large(pointer: str, max_bytes: int) -> InvalidRequest:
    return InvalidRequest(
        f"media must be at most {max_bytes} bytes",
        code=ErrorCode.media_too_large,
        pointer=pointer,
        status=413,
    )


def _not_an_image(pointer: str, detail: str) -> InvalidRequest:
    return InvalidRequest(detail, code=ErrorCode.invalid_media, pointer=pointer)


async def check_inputs(
    tenant_id: str,
    params: Params,
    files: FileIndex,
    url_policy: UrlPolicy,
    max_bytes: Callable[[str], int],
) -> dict[str, CheckedMedia]:
    """Decode and check inline media (input ``name`` at most ``max_bytes(name)``), check the
    URLs' addresses, and that referenced files are the tenant's and of the input's kind."""
    checked: dict[str, CheckedMedia] = {}
    for name, ref in params.media().items():
        pointer = f"/{name}"
        if ref.data is not None:
            most = max_bytes(name)
            raw = decode_base64(ref.data, f"{pointer}/data", most)
            checked[name] = check_media(raw, ref.kind, f"{pointer}/data", most)
        elif ref.url is not None:
            await url_policy.check(ref.url, f"{pointer}/url")
        elif ref.file_id is not None or ref.artifact_id is not None:
            field, what = ("file_id", "file") if ref.file_id else ("artifact_id", "artifact")
            given = ref.file_id or ref.artifact_id
            meta = await stored_meta(files, ref)
            if meta is None or meta.tenant != tenant_id:
                raise InvalidRequest(
                    f"{what} {given!r} not found",
                    code=ErrorCode.not_found,
                    pointer=f"{pointer}/{field}",
                    status=404,
                )
            if not meta.content_type.startswith(f"{ref.kind}/"):
                raise InvalidRequest(
                    f"{what} {given!r} is {meta.content_type}; {name} takes {ref.kind}",
                    code=ErrorCode.invalid_media,
                    pointer=f"{pointer}/{field}",
                )
    return checked


async def stored_meta(files: FileIndex, ref: MediaInput) -> BlobMeta | None:
    """An uploaded file's or an earlier output's record (``file_id``, ``artifact_id``)."""
    if ref.file_id is not None:
        return await files.file(ref.file_id)
    if ref.artifact_id is not None:
        return await files.artifact(ref.artifact_id)
    return None


BlobReader = Callable[[str], Awaitable[bytes | None]]
"""Reads a stored file's bytes by id (``None`` when gone)."""


async def seen_inputs(
    params: Params, checked: dict[str, CheckedMedia], files: FileIndex, read: BlobReader
) -> dict[str, SeenMedia]:
    """The inputs whose bytes or size the gateway has at submission (not client URLs), audio
    and video with their duration probed (by FFmpeg, off the event loop)."""
    seen: dict[str, SeenMedia] = {}
    for name, ref in params.media().items():
        if name in checked:
            media = checked[name]
            seen[name] = SeenMedia(
                media.content_type,
                media.content,
                media.width,
                media.height,
                pointer=f"/{name}/data",
            )
        elif ref.file_id is not None or ref.artifact_id is not None:
            meta = await stored_meta(files, ref)
            if meta is None:
                continue
            kind = meta.content_type.split("/", 1)[0]
            content = await read(meta.id) if kind in ("audio", "video") else None
            field = "file_id" if ref.file_id is not None else "artifact_id"
            seen[name] = SeenMedia(
                meta.content_type, content, meta.width, meta.height, pointer=f"/{name}/{field}"
            )
    for name, found in seen.items():
        if found.content is not None and found.content_type.split("/")[0] in ("audio", "video"):
            seconds = await asyncio.to_thread(duration_s, found.content, found.content_type)
            seen[name] = replace(found, duration_s=seconds)
    return seen
