"""Real audio and video files for tests, written with FFmpeg's encoders through PyAV.

Small by default (a few kilobytes, 64×48 at 10 fps); :func:`padded_mp4` makes a file of a
given size cheaply: a few frames of noise encoded at the highest quality MPEG-4 Part 2
allows, repeated (each frame is intra-coded, so it keeps its size).
"""

from __future__ import annotations

import io
import math
import os
from array import array
from pathlib import Path

import av

VIDEO_FORMATS = {
    "avi": ("avi", "mpeg4", 10),
    "mpeg": ("mpeg", "mpeg1video", 25),
    "mp4": ("mp4", "mpeg4", 10),
    "mov": ("mov", "mpeg4", 10),
    "webm": ("webm", "libvpx", 10),
}
"""Container, codec and frame rate (MPEG-1 video takes only the standard rates)."""

AUDIO_FORMATS = {
    "mp3": ("mp3", "libmp3lame", 22050),
    "ogg": ("ogg", "libopus", 48000),
    "flac": ("flac", "flac", 22050),
    "m4a": ("ipod", "aac", 22050),
    "wav": ("wav", "pcm_s16le", 16000),
}
"""Container, codec and sample rate."""


def _frame(width: int, height: int, index: int, noise: bool) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane in frame.planes:
        size = plane.buffer_size
        plane.update(os.urandom(size) if noise else bytes([(index * 9) % 256]) * size)
    frame.pts = index
    return frame


def video(kind: str, seconds: float = 2.0, width: int = 64, height: int = 48) -> bytes:
    """A ``kind`` (``avi``, ``mpeg``, ``mp4``, ``mov``, ``webm``) video of ``seconds``."""
    container, codec, rate = VIDEO_FORMATS[kind]
    out = io.BytesIO()
    with av.open(out, "w", format=container) as sink:
        stream = sink.add_stream(codec, rate=rate)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(round(seconds * rate)):
            sink.mux(stream.encode(_frame(width, height, index, noise=False)))
        sink.mux(stream.encode(None))
    return out.getvalue()


def padded_mp4(path: Path, at_least: int, width: int = 640, height: int = 480) -> Path:
    """An MP4 at ``path`` of at least ``at_least`` bytes: noise frames, intra-coded at
    MPEG-4's finest quantiser, 25 fps, as many as the size takes."""
    noise = [_frame(width, height, i, noise=True) for i in range(4)]
    with av.open(str(path), "w", format="mp4") as sink:
        stream = sink.add_stream("mpeg4", rate=25, options={"qscale": "1", "g": "1"})
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.qscale = True
        written, index = 0, 0
        while written < at_least:
            frame = noise[index % len(noise)]
            frame.pts = index
            for packet in stream.encode(frame):
                written += packet.size
                sink.mux(packet)
            index += 1
        sink.mux(stream.encode(None))
    return path


def audio(kind: str, seconds: float = 1.5, tone_hz: int = 220) -> bytes:
    """A mono ``kind`` (``mp3``, ``ogg``, ``flac``, ``m4a``, ``wav``) recording: a tone."""
    container, codec, rate = AUDIO_FORMATS[kind]
    total = round(seconds * rate)
    pcm = array("h", (int(6000 * math.sin(2 * math.pi * tone_hz * n / rate)) for n in range(total)))
    out = io.BytesIO()
    with av.open(out, "w", format=container) as sink:
        stream = sink.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        step = 960
        for start in range(0, total, step):
            part = pcm[start : start + step]
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(part))
            frame.planes[0].update(part.tobytes())
            frame.sample_rate, frame.pts = rate, start
            sink.mux(stream.encode(frame))
        sink.mux(stream.encode(None))
    return out.getvalue()
