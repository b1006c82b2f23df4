"""Audio and video inputs are whole files: real files pass; the same files with bytes after
their end, or cut short, are refused (magic bytes alone are not enough)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from app.domain.errors import ErrorCode, InvalidRequest
from app.domain.media import MediaKind
from app.domain.media_structure import av_problem
from app.domain.media_types import sniff_av
from app.jobs.intake import check_media
from app.sandbox.av import mp4_bytes, wav_bytes

LIMIT = 10 * 1024 * 1024


def _flac_encoded(tmp: Path, *extra: str) -> bytes:
    encoder = shutil.which("flac")
    assert encoder, "the reference FLAC encoder is needed (Debian package flac; see .ci/run)"
    source, out = tmp / "tone.wav", tmp / "tone.out"
    source.write_bytes(wav_bytes(1.5, 16000))
    subprocess.run([encoder, "-s", "-f", *extra, str(source), "-o", str(out)], check=True)
    return out.read_bytes()


def _mp3(frames: int, *, id3: bool = True) -> bytes:
    """MPEG-1 Layer III at 128 kbit/s, 44.1 kHz: 417-byte frames (silence)."""
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 0, 10]) + b"\0" * 10 if id3 else b""
    frame = struct.pack(">I", 0xFFFB9064) + b"\0" * (417 - 4)
    return tag + frame * frames


def _ebml(ident: int, payload: bytes, *, unknown_size: bool = False) -> bytes:
    id_bytes = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    unknown = b"\x01\xff\xff\xff\xff\xff\xff\xff"
    size = unknown if unknown_size else bytes([0x01]) + len(payload).to_bytes(7, "big")
    return id_bytes + size + payload


def _webm(*, live: bool) -> bytes:
    header = _ebml(0x1A45DFA3, _ebml(0x4282, b"webm"))
    info = _ebml(0x1549A966, _ebml(0x2AD7B1, b"\x0f\x42\x40"))
    cluster_body = _ebml(0xE7, b"\x00") + _ebml(0xA3, b"\x81\x00\x00\x80frame")
    cluster = _ebml(0x1F43B675, cluster_body, unknown_size=live)
    return header + _ebml(0x18538067, info + cluster, unknown_size=live)


@pytest.fixture(scope="module")
def whole_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("av")
    return {
        "wav": wav_bytes(1.0),
        "mp4": mp4_bytes(1.0, 32, 32),
        "flac": _flac_encoded(tmp),
        "ogg": _flac_encoded(tmp, "--ogg"),
        "mp3": _mp3(20),
        "mp3-no-id3": _mp3(5, id3=False),
        "mp3-id3v1": _mp3(5) + b"TAG" + b"\0" * 125,
        "webm": _webm(live=False),
        "webm-live": _webm(live=True),
    }


def test_whole_files_pass(whole_files: dict[str, bytes]) -> None:
    for name, content in whole_files.items():
        kind = sniff_av(content)
        assert kind is not None, name
        assert av_problem(content, kind) is None, name


@pytest.mark.parametrize(
    "junk", [b"junk", b"\0" * 7, b"<?php system($_GET['c']); ?>", b"\xff" * 64]
)
def test_bytes_after_the_end_are_refused(whole_files: dict[str, bytes], junk: bytes) -> None:
    for name, content in whole_files.items():
        kind = sniff_av(content)
        assert kind is not None
        assert av_problem(content + junk, kind) is not None, (name, junk)


def test_cut_short_files_are_refused(whole_files: dict[str, bytes]) -> None:
    for name, content in whole_files.items():
        kind = sniff_av(content)
        assert kind is not None
        assert av_problem(content[: len(content) - 3], kind) is not None, name


def test_magic_bytes_alone_are_refused() -> None:
    for content in (
        b"RIFF\x24\x00\x00\x00WAVEfmt pretend samples",
        b"\x00\x00\x00\x18ftypisom pretend frames",
        b"fLaC" + b"\0" * 40,
        b"OggS\x00\x02" + b"\0" * 30,
        b"ID3\x04\x00\x00\x00\x00\x00\x00",
        b"\x1aE\xdf\xa3\x84\x42\x82\x81w",
    ):
        kind = sniff_av(content)
        assert kind is not None
        assert av_problem(content, kind) is not None, content


def test_a_wav_whose_data_chunk_lies_about_its_size_is_refused() -> None:
    good = wav_bytes(0.5)
    assert good[36:40] == b"data"
    lying = good[:40] + struct.pack("<I", 10**6) + good[44:]
    assert av_problem(lying, "audio/wav") is not None


def test_the_edge_refuses_trailing_junk_with_a_pointer(whole_files: dict[str, bytes]) -> None:
    assert check_media(whole_files["wav"], MediaKind.audio, "/audio/data", LIMIT).kind is (
        MediaKind.audio
    )
    with pytest.raises(InvalidRequest) as refused:
        check_media(whole_files["wav"] + b"junk", MediaKind.audio, "/audio/data", LIMIT)
    assert refused.value.code is ErrorCode.invalid_media
    assert refused.value.errors[0].pointer == "/audio/data"
    with pytest.raises(InvalidRequest):
        check_media(whole_files["mp4"] + b"\0\0\0\x10junk", MediaKind.video, "/video/data", LIMIT)
