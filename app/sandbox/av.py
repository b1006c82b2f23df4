"""Real, decodable audio and video bytes for the emulators' outputs (stdlib + Pillow only).

Audio is a mono 16-bit PCM WAV holding a quiet 440 Hz sine tone, written with :mod:`wave`.

Video is a minimal ISO-BMFF MP4 (``ftyp`` brand ``isom``; ``moov`` before ``mdat`` so it can be
read progressively) with one video track whose samples are baseline JPEG frames rendered with
Pillow. The sample entry is ``mp4v`` with an ``esds`` whose DecoderConfigDescriptor declares
objectTypeIndication ``0x6C`` (ISO/IEC 10918-1, JPEG) and streamType 4 (visual): that is the
registered MP4 way to carry JPEG frames ("Motion JPEG in MP4"), and ffprobe/ffmpeg demux and
decode it as ``mjpeg``. Browsers' ``<video>`` elements do not play JPEG-in-MP4 (they only carry
H.264/HEVC/VP9/AV1 decoders), but writing an H.264 bitstream in pure Python is out of scope; every
consumer in this project (ffprobe, Pillow per frame, our own box parser) reads this file.

Timing: both ``mvhd`` and ``mdhd`` use a timescale of 1000, so their durations equal
``duration_s`` to the millisecond. The track has ``max(1, round(duration_s * fps))`` frames whose
``stts`` deltas sum exactly to the media duration.
"""

from __future__ import annotations

import io
import math
import struct
import sys
import wave
from array import array
from functools import lru_cache

from PIL import Image

TIMESCALE = 1000
"""Ticks per second of both the movie (``mvhd``) and the media (``mdhd``) timelines."""

_TONE_HZ = 440
_AMPLITUDE = 0.1 * 32767
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


@lru_cache(maxsize=64)
def wav_bytes(duration_s: float, sample_rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV of ``round(duration_s * sample_rate)`` frames: a quiet sine tone."""
    if duration_s < 0 or sample_rate <= 0:
        raise ValueError("duration_s must be >= 0 and sample_rate > 0")
    frames = round(duration_s * sample_rate)
    # An integer frequency makes one second of samples exactly periodic: compute it once, tile it.
    second = array(
        "h",
        (
            int(_AMPLITUDE * math.sin(2 * math.pi * _TONE_HZ * n / sample_rate))
            for n in range(sample_rate)
        ),
    )
    if sys.byteorder == "big":
        second.byteswap()
    whole, rest = divmod(frames, sample_rate)
    pcm = second.tobytes() * whole + second[:rest].tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return out.getvalue()


@lru_cache(maxsize=64)
def mp4_bytes(duration_s: float, width: int = 64, height: int = 64, fps: int = 4) -> bytes:
    """A ``width``×``height`` MP4 of ``duration_s`` seconds whose frames are JPEG images."""
    if duration_s <= 0 or width <= 0 or height <= 0 or fps <= 0:
        raise ValueError("duration_s, width, height and fps must be positive")
    count = max(1, round(duration_s * fps))
    duration = round(duration_s * TIMESCALE)
    frames = [_frame(width, height, i, count) for i in range(count)]
    deltas = [(i + 1) * duration // count - i * duration // count for i in range(count)]

    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
    moov = _moov(width, height, duration, deltas, [len(f) for f in frames], chunk_offset=0)
    offset = len(ftyp) + len(moov) + 8
    moov = _moov(width, height, duration, deltas, [len(f) for f in frames], chunk_offset=offset)
    return ftyp + moov + _box(b"mdat", b"".join(frames))


def _frame(width: int, height: int, index: int, count: int) -> bytes:
    """One JPEG frame: a gradient whose green channel steps with the frame number."""
    gradient = Image.linear_gradient("L").resize((width, height))
    tint = Image.new("L", (width, height), 255 * index // max(1, count - 1))
    image = Image.merge(
        "RGB", [gradient, tint, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    )
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _descriptor(tag: int, payload: bytes) -> bytes:
    """An MPEG-4 descriptor with a 4-byte expandable length (the form most muxers write)."""
    n = len(payload)
    size = bytes(
        [0x80 | (n >> 21) & 0x7F, 0x80 | (n >> 14) & 0x7F, 0x80 | (n >> 7) & 0x7F, n & 0x7F]
    )
    return bytes([tag]) + size + payload


def _moov(
    width: int,
    height: int,
    duration: int,
    deltas: list[int],
    sizes: list[int],
    chunk_offset: int,
) -> bytes:
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIH", 0, 0, TIMESCALE, duration, 0x10000, 0x100)
        + bytes(10)
        + _MATRIX
        + bytes(24)
        + struct.pack(">I", 2),
    )
    tkhd = _full_box(
        b"tkhd",
        0,
        0x3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, 1, 0, duration)
        + bytes(8)
        + struct.pack(">hhhH", 0, 0, 0, 0)
        + _MATRIX
        + struct.pack(">II", width << 16, height << 16),
    )
    und = ((ord("u") - 0x60) << 10) | ((ord("n") - 0x60) << 5) | (ord("d") - 0x60)
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, duration, und, 0))
    hdlr = _full_box(b"hdlr", 0, 0, bytes(4) + b"vide" + bytes(12) + b"VideoHandler\x00")
    vmhd = _full_box(b"vmhd", 0, 1, bytes(8))
    dinf = _box(
        b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1) + _full_box(b"url ", 0, 1, b""))
    )
    stbl = _box(
        b"stbl",
        _stsd(width, height)
        + _full_box(b"stts", 0, 0, _stts_entries(deltas))
        + _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(sizes), 1))
        + _full_box(b"stsz", 0, 0, struct.pack(f">II{len(sizes)}I", 0, len(sizes), *sizes))
        + _full_box(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset)),
    )
    minf = _box(b"minf", vmhd + dinf + stbl)
    trak = _box(b"trak", tkhd + _box(b"mdia", mdhd + hdlr + minf))
    return _box(b"moov", mvhd + trak)


def _stts_entries(deltas: list[int]) -> bytes:
    """Run-length (sample_count, sample_delta) pairs, prefixed by their count."""
    runs: list[list[int]] = []
    for delta in deltas:
        if runs and runs[-1][1] == delta:
            runs[-1][0] += 1
        else:
            runs.append([1, delta])
    return struct.pack(">I", len(runs)) + b"".join(struct.pack(">II", n, d) for n, d in runs)


def _stsd(width: int, height: int) -> bytes:
    decoder_config = _descriptor(
        0x04,
        # objectTypeIndication 0x6C = JPEG; streamType 4 (visual) << 2 | reserved bit 1.
        struct.pack(">BB", 0x6C, (0x04 << 2) | 1) + bytes(3) + struct.pack(">II", 0, 0),
    )
    sl_config = _descriptor(0x06, b"\x02")
    es = _descriptor(0x03, struct.pack(">HB", 1, 0) + decoder_config + sl_config)
    esds = _full_box(b"esds", 0, 0, es)
    compressor = b"\x04JPEG".ljust(32, b"\x00")
    mp4v = _box(
        b"mp4v",
        bytes(6)
        + struct.pack(">H", 1)  # data_reference_index
        + bytes(16)
        + struct.pack(">HHIIIH", width, height, 0x480000, 0x480000, 0, 1)
        + compressor
        + struct.pack(">Hh", 0x18, -1)
        + esds,
    )
    return _full_box(b"stsd", 0, 0, struct.pack(">I", 1) + mp4v)
