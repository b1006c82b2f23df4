"""Telling a media file's type: from the bytes, or from what a server declared.

The edge uses it to check uploads; adapters use it to type what an upstream returned when
its ``Content-Type`` is missing, generic or of the wrong kind.
"""

from __future__ import annotations

_ALIASES = {
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "image/jpg": "image/jpeg",
    "video/avi": "video/x-msvideo",
    "video/msvideo": "video/x-msvideo",
}


def sniff(content: bytes) -> str | None:
    """The media type the first bytes announce (PNG, JPEG, WEBP, MP4/MOV/M4A, WEBM, AVI,
    MPEG, WAV, MP3, OGG, FLAC), or None."""
    head = content[:16]
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return sniff_av(content)


def sniff_av(content: bytes) -> str | None:
    """The content type of an audio or video file, told by its first bytes."""
    head = content[:16]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):  # MPEG-PS pack, MPEG-1/2 video
        return "video/mpeg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    return None


def media_type(content: bytes, kind: str, *declared: object) -> str | None:
    """The first declared type of the expected ``kind`` (``image``, ``audio``, ``video``),
    else the sniffed one if it is of that kind; None when neither is."""
    for value in declared:
        candidate = str(value or "").split(";")[0].strip().lower()
        candidate = _ALIASES.get(candidate, candidate)
        if candidate.startswith(f"{kind}/"):
            return candidate
    sniffed = sniff(content)
    return sniffed if sniffed is not None and sniffed.startswith(f"{kind}/") else None
