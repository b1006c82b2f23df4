"""What an audio or video file holds, read by FFmpeg's demuxers through PyAV.

PyAV's wheels bundle FFmpeg's libraries (libavformat, libavcodec, libswresample), so no
system ``ffmpeg`` or ``ffprobe`` is needed anywhere the gateway runs. :func:`probe` opens the
container from memory and reads its headers (and, where a container keeps no duration in
them, as MPEG program streams do, the timestamps FFmpeg finds): nothing is decoded. It gives
the container's format, its audio and video streams and its duration, or ``None`` when FFmpeg
cannot read the bytes as any container it knows. It never raises.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import av

log = logging.getLogger(__name__)

_AV_TIME_BASE = 1_000_000
"""``container.duration`` is in microseconds (FFmpeg's ``AV_TIME_BASE``)."""

logging.getLogger("libav").setLevel(logging.ERROR)
"""FFmpeg's own warnings about odd inputs are not the gateway's to log."""


@dataclass(frozen=True)
class AvInfo:
    """One audio or video file as FFmpeg reads it."""

    format: str
    """The demuxer FFmpeg chose (``avi``, ``mpeg``, ``mov,mp4,m4a,3gp,3g2,mj2``, ``wav``…)."""
    duration_s: float | None
    """Seconds, when the container or its streams say; ``None`` when unknown."""
    video_streams: int
    audio_streams: int

    def holds(self, kind: str) -> bool:
        """At least one stream of ``kind`` (``audio`` or ``video``)."""
        return (self.video_streams if kind == "video" else self.audio_streams) > 0


def probe(content: bytes) -> AvInfo | None:
    """The container's format, streams and duration; ``None`` when FFmpeg cannot open it."""
    if not content:
        return None
    try:
        with av.open(io.BytesIO(content), mode="r") as container:
            video = [s for s in container.streams if s.type == "video"]
            audio = [s for s in container.streams if s.type == "audio"]
            return AvInfo(
                format=container.format.name,
                duration_s=_duration(container),
                video_streams=len(video),
                audio_streams=len(audio),
            )
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        log.debug("not an audio or video file FFmpeg reads: %s", exc)
        return None


def _duration(container: av.container.InputContainer) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / _AV_TIME_BASE
    longest: float | None = None
    for stream in container.streams:
        if stream.duration is None or stream.time_base is None or stream.duration <= 0:
            continue
        seconds = float(stream.duration * stream.time_base)
        longest = max(longest or 0.0, seconds)
    return longest
