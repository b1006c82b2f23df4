"""The emulators' WAV and MP4 bytes decode, and `probe.duration_s` reads their durations."""

from __future__ import annotations

import io
import struct
import wave
from typing import cast

import av
import pytest
from PIL import Image

from app.jobs import probe
from app.sandbox.av import TIMESCALE, mp4_bytes, wav_bytes

Boxes = dict[bytes, list[bytes]]


def boxes(data: bytes) -> Boxes:
    """Payloads of the ISO-BMFF boxes in ``data`` (32-bit sizes only), by type."""
    found: Boxes = {}
    pos = 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        assert size >= 8 and pos + size <= len(data), (kind, size)
        found.setdefault(kind, []).append(data[pos + 8 : pos + size])
        pos += size
    return found


def child(data: bytes, *path: bytes) -> bytes:
    for kind in path:
        (data,) = boxes(data)[kind]
    return data


@pytest.mark.parametrize(("duration", "rate"), [(1.0, 16000), (2.5, 16000), (0.3, 22050)])
def test_wav_parses_with_the_right_frame_count(duration: float, rate: int) -> None:
    with wave.open(io.BytesIO(wav_bytes(duration, rate)), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, rate)
        assert wav.getnframes() == round(duration * rate)
        samples = wav.readframes(wav.getnframes())
    peak = max(abs(s) for (s,) in struct.iter_unpack("<h", samples))
    assert 1000 < peak < 8000  # a tone, and a quiet one


@pytest.mark.parametrize(
    ("duration", "width", "height", "fps"), [(2.0, 64, 64, 4), (1.5, 96, 48, 4), (0.1, 32, 32, 8)]
)
def test_mp4_structure_and_frames(duration: float, width: int, height: int, fps: int) -> None:
    data = mp4_bytes(duration, width, height, fps)
    top = boxes(data)
    assert list(top) == [b"ftyp", b"moov", b"mdat"]
    assert top[b"ftyp"][0][:4] == b"isom"

    moov = top[b"moov"][0]
    mvhd = child(moov, b"mvhd")
    assert mvhd[0] == 0
    timescale, length = struct.unpack_from(">II", mvhd, 12)
    assert (timescale, length / timescale) == (TIMESCALE, duration)

    mdia = child(moov, b"trak", b"mdia")
    mdhd = child(mdia, b"mdhd")
    timescale, length = struct.unpack_from(">II", mdhd, 12)
    assert length / timescale == duration
    assert child(mdia, b"hdlr")[8:12] == b"vide"
    tkhd = child(moov, b"trak", b"tkhd")
    assert struct.unpack_from(">II", tkhd, 76) == (width << 16, height << 16)

    stbl = child(mdia, b"minf", b"stbl")
    stsd = child(stbl, b"stsd")
    assert stsd[12:16] == b"mp4v"
    esds = stsd[8 + 86 :]
    assert esds[4:8] == b"esds" and b"\x04\x80\x80\x80\x0d\x6c\x11" in esds  # OTI 0x6C: JPEG

    count = round(duration * fps)
    stsz = child(stbl, b"stsz")
    sample_size, sample_count = struct.unpack_from(">II", stsz, 4)
    assert (sample_size, sample_count) == (0, count)
    sizes = struct.unpack_from(f">{count}I", stsz, 12)

    stts = child(stbl, b"stts")
    (runs,) = struct.unpack_from(">I", stts, 4)
    pairs = [struct.unpack_from(">II", stts, 8 + 8 * i) for i in range(runs)]
    assert sum(n for n, _ in pairs) == count
    assert sum(n * d for n, d in pairs) == round(duration * TIMESCALE)

    assert struct.unpack_from(">IIII", child(stbl, b"stsc"), 4) == (1, 1, count, 1)
    entries, offset = struct.unpack_from(">II", child(stbl, b"stco"), 4)
    assert entries == 1
    mdat_start = len(data) - len(top[b"mdat"][0])
    assert offset == mdat_start
    assert sum(sizes) == len(top[b"mdat"][0])
    for size in sizes:
        with Image.open(io.BytesIO(data[offset : offset + size])) as frame:
            frame.load()
            assert (frame.format, frame.size) == ("JPEG", (width, height))
        offset += size


def test_frames_differ() -> None:
    data = mp4_bytes(1.0)
    assert data.count(b"\xff\xd8\xff") >= 4
    assert data is mp4_bytes(1.0)  # cached


def test_ffmpeg_reads_the_mp4() -> None:
    """FFmpeg's own demuxer and decoder (PyAV's bundled libraries) read the emulator's MP4:
    its duration, one MJPEG stream of the written size, and every frame decodes."""
    with av.open(io.BytesIO(mp4_bytes(3.0)), mode="r") as container:
        assert container.duration is not None
        assert container.duration / 1_000_000 == pytest.approx(3.0)
        (stream,) = container.streams
        assert stream.type == "video"
        stream = cast(av.VideoStream, stream)
        assert (stream.codec_context.name, stream.width, stream.height) == ("mjpeg", 64, 64)
        frames = list(container.decode(stream))
    assert len(frames) == 12
    assert {(f.width, f.height) for f in frames} == {(64, 64)}


def test_probe_reads_wav_and_mp4() -> None:
    assert probe.duration_s(wav_bytes(2.5), "audio/wav") == 2.5
    assert probe.duration_s(wav_bytes(1.0), "application/octet-stream") == 1.0
    assert probe.duration_s(mp4_bytes(4.0), "video/mp4") == 4.0
    assert probe.duration_s(mp4_bytes(1.25), "video/quicktime; codecs=x") == 1.25


def test_probe_reads_mvhd_version_1() -> None:
    payload = struct.pack(">IQQIQ", 1 << 24, 0, 0, 600, 600 * 7)
    moov = struct.pack(">I4s", 8 + 8 + len(payload), b"moov")
    mvhd = struct.pack(">I4s", 8 + len(payload), b"mvhd") + payload
    ftyp = struct.pack(">I4s", 16, b"ftyp") + b"qt  \x00\x00\x00\x00"
    assert probe.duration_s(ftyp + moov + mvhd, "video/quicktime") == 7.0


def test_probe_reads_mp3_frames() -> None:
    # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417-byte frames of 1152 samples.
    frame = b"\xff\xfb\x90\x00" + bytes(413)
    assert probe.duration_s(frame * 100, "audio/mpeg") == pytest.approx(100 * 1152 / 44100)
    id3 = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)
    assert probe.duration_s(id3 + frame * 10, "audio/mpeg") == pytest.approx(10 * 1152 / 44100)


def test_probe_reads_mp3_xing_frame_count() -> None:
    xing = b"Xing" + struct.pack(">II", 1, 5000)
    first = (b"\xff\xfb\x90\x00" + bytes(32) + xing).ljust(417, b"\x00")
    assert probe.duration_s(first, "audio/mpeg") == pytest.approx(5000 * 1152 / 44100)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", "audio/wav"),
        (b"garbage bytes, not media", "audio/wav"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt junk", "audio/wav"),
        (b"garbage bytes, not media", "video/mp4"),
        (b"\x00\x00\x00\x08moov", "video/mp4"),
        (mp4_bytes(1.0)[:60], "video/mp4"),
        (b"\x00\x00\x00\x14moov\x00\x00\x00\x0cmvhd\x00\x00\x00\x00", "video/mp4"),
        (b"garbage bytes, not media", "audio/mpeg"),
        (b"ID3\x04\x00", "audio/mpeg"),
        (b"whatever", "image/png"),
    ],
)
def test_probe_gives_none_on_garbage(content: bytes, content_type: str) -> None:
    assert probe.duration_s(content, content_type) is None
