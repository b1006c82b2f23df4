"""Everypixel emulator, the wire: Basic auth, request parameters, media inputs and what they hold.

Parameters are read from the query string, and for a ``POST`` from its form fields too (the
document sends analysis options in the query and task options as form data). A media input is
an uploaded multipart file or a URL parameter the emulator downloads; both are capped at
100 MB (the document's limit for video uploads, the only one it states). Refusals carry the
document's error body ``{"status": "error", "message": …}``.

Media are read as far as the emulator needs: pictures with Pillow (size, format, one colour
or not), videos from their ISO-BMFF ``mvhd``/``tkhd`` boxes (MP4, MOV; AVI and MPEG are
accepted with a nominal 640×360, 10 s), audio length from WAV headers (MP3 estimated at
128 kbit/s; OGG, FLAC and M4A accepted with an unknown length).
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import wave
import zlib
from dataclasses import dataclass
from typing import Final

import httpx
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from app.sandbox import fetch, images
from app.sandbox.credentials import EVERYPIXEL_KEY_PAIRS

MAX_UPLOAD_BYTES: Final = 100 * 1024 * 1024
FETCH_TIMEOUT_S: Final = 10.0
NOMINAL_VIDEO: Final = (640, 360, 10.0)
MP3_BYTES_PER_S: Final = 16_000
KEY_PAIRS: Final = dict(EVERYPIXEL_KEY_PAIRS)


class Refusal(Exception):
    """A request refused with ``{"status": "error", "message": …}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def client_id(authorization: str | None) -> str | None:
    """The key pair's client id when ``Authorization: Basic`` carries a known pair."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    given_id, _, given_secret = decoded.partition(":")
    return given_id if KEY_PAIRS.get(given_id, None) == given_secret else None


@dataclass
class Form:
    """A request's parameters (query, then form fields) and uploaded files."""

    values: dict[str, str]
    files: dict[str, bytes]

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if value else None

    def integer(self, name: str, low: int, high: int | None = None) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise Refusal(400, f"{name.capitalize()} must be integer.") from None
        if number < low:
            raise Refusal(400, f"{name.capitalize()} must be at least {low}.")
        return number if high is None else min(number, high)

    def fraction(self, name: str) -> float | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise Refusal(400, f"{name.capitalize()} must be float.") from None
        if not 0.0 <= number <= 1.0:
            raise Refusal(400, f"{name.capitalize()} must be between 0.0 and 1.0.")
        return number

    def flag(self, name: str) -> bool:
        value = (self.text(name) or "false").lower()
        if value not in ("true", "false", "1", "0"):
            raise Refusal(400, f"{name.capitalize()} must be boolean.")
        return value in ("true", "1")

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(name) or default
        if value not in allowed:
            raise Refusal(400, f"{name.capitalize()} must be one of: {', '.join(allowed)}.")
        return value

    def url(self, name: str) -> str | None:
        value = self.text(name)
        if value is not None and not value.startswith(("http://", "https://")):
            raise Refusal(400, f"{name.capitalize()} must be a URL.")
        return value


async def read_form(request: Request) -> Form:
    values = dict(request.query_params)
    files: dict[str, bytes] = {}
    content_type = request.headers.get("content-type", "").lower()
    if request.method != "POST" or not content_type.startswith(
        ("multipart/form-data", "application/x-www-form-urlencoded")
    ):
        return Form(values, files)
    try:
        async with request.form(max_files=8, max_fields=64) as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read(MAX_UPLOAD_BYTES + 1)
                    _check_size(data)
                    files[name] = data
                else:
                    values[name] = value
    except (MultiPartException, HTTPException) as exc:
        raise Refusal(400, f"Malformed form data: {exc}") from exc
    return Form(values, files)


def _check_size(data: bytes) -> None:
    if len(data) > MAX_UPLOAD_BYTES:
        raise Refusal(413, "File is too large. Maximum size is 100 MB.")


async def media(form: Form, field: str, url_name: str, label: str) -> bytes:
    """An uploaded ``field`` file, else the file at ``url_name`` (downloaded)."""
    if field in form.files:
        data = form.files[field]
    elif (url := form.url(url_name)) is not None:
        data = await _download(url, label)
    else:
        raise Refusal(400, f"{label} URL is missing.")
    if not data:
        raise Refusal(400, f"{label} file is empty.")
    return data


async def _download(url: str, label: str) -> bytes:
    data = bytearray()
    try:
        async with fetch.client(FETCH_TIMEOUT_S) as client:
            async with client.stream("GET", url) as response:
                if not response.is_success:
                    message = (
                        f"Could not download the {label.lower()} (HTTP {response.status_code})."
                    )
                    raise Refusal(400, message)
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_UPLOAD_BYTES:
                        break
    except httpx.HTTPError as exc:
        raise Refusal(400, f"Could not download the {label.lower()}.") from exc
    _check_size(bytes(data))
    return bytes(data)


# what media hold ---------------------------------------------------------------------------------


def picture(data: bytes, label: str, formats: frozenset[str] | None = None) -> images.ImageInfo:
    info = images.inspect(data)
    if info is None or (formats is not None and info.format not in formats):
        names = ", ".join(sorted(f.upper() for f in formats)) if formats else "images"
        raise Refusal(400, f"Unsupported file format of the {label.lower()}. Use {names}.")
    return info


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    duration_s: float
    seed: int


def video(data: bytes, label: str) -> VideoInfo:
    seed = zlib.crc32(data)
    if data[4:8] == b"ftyp":
        found = _iso_video(data)
        if found is not None:
            return VideoInfo(*found, seed=seed)
    elif (data[:4] == b"RIFF" and data[8:12] == b"AVI ") or data[:4] in (
        b"\x00\x00\x01\xba",
        b"\x00\x00\x01\xb3",
    ):
        return VideoInfo(*NOMINAL_VIDEO, seed=seed)
    raise Refusal(400, f"Unsupported file format of the {label.lower()}. Use MP4, MOV, AVI, MPEG.")


def _boxes(data: bytes, start: int, end: int) -> dict[bytes, list[tuple[int, int]]]:
    """ISO-BMFF boxes between ``start`` and ``end``: type → [(payload start, payload end)]."""
    found: dict[bytes, list[tuple[int, int]]] = {}
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1 and at + 16 <= end:
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            break
        found.setdefault(kind, []).append((at + header, at + size))
        at += size
    return found


def _iso_video(data: bytes) -> tuple[int, int, float] | None:
    try:
        [(moov, moov_end)] = _boxes(data, 0, len(data)).get(b"moov", [])[:1]
        inside = _boxes(data, moov, moov_end)
        [(mvhd, _)] = inside.get(b"mvhd", [])[:1]
        if data[mvhd] == 1:
            timescale, duration = struct.unpack_from(">IQ", data, mvhd + 20)
        else:
            timescale, duration = struct.unpack_from(">II", data, mvhd + 12)
        for trak, trak_end in inside.get(b"trak", []):
            for tkhd, _ in _boxes(data, trak, trak_end).get(b"tkhd", []):
                offset = tkhd + (88 if data[tkhd] == 1 else 76)
                width, height = struct.unpack_from(">II", data, offset)
                if width >> 16 and height >> 16 and timescale:
                    return width >> 16, height >> 16, duration / timescale
    except (ValueError, struct.error, IndexError):
        return None
    return None


def audio_duration(data: bytes, label: str) -> float | None:
    """Seconds of audio when the format tells them; ``None`` for a known format that does not."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        try:
            with wave.open(io.BytesIO(data)) as wav:
                frames: int = wav.getnframes()
                rate: int = wav.getframerate()
                return frames / rate
        except (wave.Error, EOFError, ZeroDivisionError):
            raise Refusal(400, f"The {label.lower()} could not be decoded.") from None
    if data[:3] == b"ID3" or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return len(data) / MP3_BYTES_PER_S
    if data[:4] in (b"OggS", b"fLaC") or data[4:8] == b"ftyp":
        return None
    raise Refusal(400, f"Unsupported file format of the {label.lower()}. Use WAV, MP3, OGG, M4A.")
