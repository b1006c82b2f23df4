"""Converting an audio input to the format the chosen provider takes, before it is sent.

Where a row of :mod:`app.providers.media_limits` takes a type only after conversion
(``AvLimits.converts``: ImagePipeline's voice reference is WAV), :func:`conform_audio`
decodes the input with FFmpeg's decoders through PyAV (its wheels bundle FFmpeg, so no system
``ffmpeg`` is needed) and writes 16-bit PCM WAV at the input's own sample rate, in mono or
stereo as the input has it (more channels are mixed down to stereo). An input the row takes
as it is is left alone. :func:`read_conformed_audio` does it for an adapter and records the
change on the call (``Call.conformed``), as pictures fitted to a provider's limits are.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import av
import av.error

from app.domain.media import MediaInput
from app.domain.media_types import sniff_av
from app.domain.models import ConformedInput, MediaShape
from app.providers.base import Call, Media
from app.providers.media_limits import WAV, AvLimits

_WAV_CODEC = "pcm_s16le"
_MAX_SECONDS = 3600.0
"""Longer input is refused rather than converted (a WAV of it would be over 600 MB)."""


class UnconvertibleAudio(ValueError):
    """The input is not audio FFmpeg can decode, or there is too much of it."""


@dataclass(frozen=True)
class ConformedAudio:
    media: Media
    change: ConformedInput | None


def _layout(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


def to_wav(media: Media) -> tuple[Media, float]:
    """``media`` decoded and written as 16-bit PCM WAV; with its duration in seconds."""
    out = io.BytesIO()
    samples = 0
    try:
        with av.open(io.BytesIO(media.content), mode="r") as source:
            if not source.streams.audio:
                raise UnconvertibleAudio("the file holds no audio stream")
            stream = source.streams.audio[0]
            rate = stream.codec_context.sample_rate or 44100
            layout = _layout(stream.codec_context.channels or 1)
            resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
            with av.open(out, mode="w", format="wav") as sink:
                target = sink.add_stream(_WAV_CODEC, rate=rate, layout=layout)
                assert isinstance(target, av.AudioStream)
                for frame in source.decode(stream):
                    for converted in resampler.resample(frame):
                        samples += converted.samples
                        if samples > _MAX_SECONDS * rate:
                            raise UnconvertibleAudio(f"more than {_MAX_SECONDS:g} s of audio")
                        converted.pts = None
                        sink.mux(target.encode(converted))
                for converted in resampler.resample(None):
                    samples += converted.samples
                    converted.pts = None
                    sink.mux(target.encode(converted))
                sink.mux(target.encode(None))
    except (av.error.FFmpegError, ValueError, OSError, EOFError) as exc:
        if isinstance(exc, UnconvertibleAudio):
            raise
        raise UnconvertibleAudio(f"not audio FFmpeg can decode: {exc}") from exc
    if samples == 0:
        raise UnconvertibleAudio("the file holds no audio samples")
    return Media(out.getvalue(), WAV), samples / rate


def conform_audio(media: Media, limits: AvLimits, name: str = "input") -> ConformedAudio:
    """``media`` as the row takes it: unchanged when it does as it is, else converted. The
    type is the one its bytes announce (a server's ``Content-Type`` may say otherwise)."""
    kind = sniff_av(media.content) or media.content_type
    if not limits.needs_conversion(kind):
        return ConformedAudio(media, None)
    if not limits.takes(kind):
        raise UnconvertibleAudio(f"{kind} is not audio this provider takes ({limits.names()})")
    converted, seconds = to_wav(media)
    change = ConformedInput(
        input=name,
        before=MediaShape(content_type=kind, bytes=len(media.content)),
        after=MediaShape(
            content_type=converted.content_type,
            bytes=len(converted.content),
            duration_s=round(seconds, 3),
        ),
    )
    return ConformedAudio(converted, change)


async def read_conformed_audio(call: Call, ref: MediaInput, limits: AvLimits) -> Media | None:
    """The input's bytes converted where ``limits`` needs it (the change recorded on
    ``call.conformed``), or ``None`` when the provider takes it as it is (the adapter then
    sends it as it came). Raises :class:`UnconvertibleAudio`."""
    media = await call.media.read(ref)
    name = ref.file_id or ref.url or "input"
    result = await asyncio.to_thread(conform_audio, media, limits, name)
    if result.change is None:
        return None
    call.conformed.append(result.change)
    return result.media
