"""Durations of audio and video, read without decoding them.

The headers of the commonest containers are read here directly, exactly (an MP3 without a
Xing header has its frames counted, where FFmpeg would estimate from the bitrate); every
other container FFmpeg knows (AVI, MPEG, WEBM, OGG, FLAC…) is read by its demuxers through
PyAV (:mod:`app.domain.media_probe`), as is one of these the headers do not give:

- WAV: :mod:`wave` (frames / frame rate); a WAV the module refuses (e.g. WAVE_FORMAT_EXTENSIBLE)
  falls back to the RIFF ``fmt `` byte rate and the ``data`` chunk size.
- MP4 / MOV / M4A: the ``mvhd`` box (timescale and duration, versions 0 and 1), found by walking
  the top-level boxes and then the children of ``moov``.
- MP3: the Xing/Info header's frame count when the first frame carries one, otherwise a walk over
  the MPEG audio Layer III frames (each frame header gives its length).

Anything that does not parse gives ``None``: this never raises.
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Iterator

from app.domain.media_probe import probe
from app.domain.media_types import sniff_av

_WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
_MP4_TYPES = frozenset(
    {"video/mp4", "video/quicktime", "audio/mp4", "audio/x-m4a", "audio/m4a", "video/x-m4v"}
)
_MP3_TYPES = frozenset({"audio/mpeg", "audio/mp3", "audio/x-mp3", "audio/mpeg3"})
_MP4_TOP_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
_PARSE_ERRORS = (
    wave.Error,
    EOFError,
    struct.error,
    ValueError,
    IndexError,
    OverflowError,
    ZeroDivisionError,
)


def duration_s(content: bytes, content_type: str) -> float | None:
    """Seconds of audio/video in ``content``, or ``None`` when unknown or unparseable (and
    for anything but audio or video: FFmpeg reads a picture as a one-frame video)."""
    main = content_type.split("/", 1)[0].strip().lower()
    if main not in ("audio", "video") and sniff_av(content) is None:
        return None
    found = _header_duration(content, content_type)
    if found is not None:
        return found
    info = probe(content)
    return _positive(info.duration_s) if info is not None and info.duration_s else None


def _header_duration(content: bytes, content_type: str) -> float | None:
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        if kind in _WAV_TYPES or (content[:4] == b"RIFF" and content[8:12] == b"WAVE"):
            return _wav_duration(content)
        if kind in _MP4_TYPES or content[4:8] in _MP4_TOP_BOXES:
            return _mp4_duration(content)
        if kind in _MP3_TYPES:
            return _mp3_duration(content)
    except _PARSE_ERRORS:
        return None
    return None


def _positive(value: float) -> float | None:
    return value if value > 0 else None


def _wav_duration(content: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(content), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except wave.Error:
        return _riff_duration(content)


def _riff_duration(content: bytes) -> float | None:
    if content[:4] != b"RIFF" or content[8:12] != b"WAVE":
        return None
    byte_rate: int | None = None
    pos = 12
    while pos + 8 <= len(content):
        kind = content[pos : pos + 4]
        size: int = struct.unpack_from("<I", content, pos + 4)[0]
        if kind == b"fmt ":
            byte_rate = struct.unpack_from("<I", content, pos + 16)[0]
        elif kind == b"data":
            if not byte_rate:
                return None
            return min(size, len(content) - pos - 8) / byte_rate
        pos += 8 + size + (size & 1)
    return None


def _boxes(content: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each ISO-BMFF box in ``content[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", content, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", content, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _mp4_duration(content: bytes) -> float | None:
    for kind, start, end in _boxes(content, 0, len(content)):
        if kind != b"moov":
            continue
        for child, cstart, _ in _boxes(content, start, end):
            if child != b"mvhd":
                continue
            version = content[cstart]
            if version == 1:
                timescale, duration = struct.unpack_from(">IQ", content, cstart + 20)
                unknown = 0xFFFF_FFFF_FFFF_FFFF
            else:
                timescale, duration = struct.unpack_from(">II", content, cstart + 12)
                unknown = 0xFFFF_FFFF
            if timescale == 0 or duration == unknown:
                return None
            return _positive(duration / timescale)
    return None


# MPEG audio Layer III: bitrates (kbit/s) by [MPEG-1?][index]; sample rates by version bits.
_L3_BITRATES = {
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame(content: bytes, pos: int) -> tuple[int, int, int, bool] | None:
    """(frame length, samples per frame, sample rate, mono) of a Layer III frame at ``pos``."""
    if pos + 4 > len(content):
        return None
    (header,) = struct.unpack_from(">I", content, pos)
    if header >> 21 != 0x7FF:
        return None
    version = (header >> 19) & 3
    layer = (header >> 17) & 3
    bitrate_index = (header >> 12) & 0xF
    rate_index = (header >> 10) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _L3_BITRATES[mpeg1][bitrate_index] * 1000
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = (header >> 9) & 1
    samples = 1152 if mpeg1 else 576
    length = (samples // 8) * bitrate // sample_rate + padding
    mono = (header >> 6) & 3 == 3
    return length, samples, sample_rate, mono


def _mp3_duration(content: bytes) -> float | None:
    pos = 0
    if content[:3] == b"ID3" and len(content) >= 10:
        synchsafe = content[6:10]
        tag_size = (synchsafe[0] << 21) | (synchsafe[1] << 14) | (synchsafe[2] << 7) | synchsafe[3]
        pos = 10 + tag_size + (10 if content[5] & 0x10 else 0)
    first = _mp3_frame(content, pos)
    if first is None:
        return None
    length, samples, sample_rate, mono = first
    mpeg1 = samples == 1152
    side_info = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    xing = pos + 4 + side_info
    if content[xing : xing + 4] in (b"Xing", b"Info"):
        (flags,) = struct.unpack_from(">I", content, xing + 4)
        if flags & 1:
            (frames,) = struct.unpack_from(">I", content, xing + 8)
            return _positive(frames * samples / sample_rate)
    total = 0.0
    frame: tuple[int, int, int, bool] | None = first
    while frame is not None:
        length, samples, sample_rate, _ = frame
        total += samples / sample_rate
        pos += length
        frame = _mp3_frame(content, pos)
    return _positive(total)
