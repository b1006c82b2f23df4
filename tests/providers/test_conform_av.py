"""Audio and video rows of the one table (``media_limits``), and converting a recording to the
WAV ImagePipeline's voice cloning takes (``_conform_av``), on real files PyAV writes."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx
from redis.asyncio import Redis

from app.domain.errors import ErrorCode
from app.domain.media import AudioInput
from app.domain.operations import CloneVoice, Operation
from app.providers._conform_av import UnconvertibleAudio, conform_audio, read_conformed_audio
from app.providers.base import AdapterConfig, Call, Credential, Failed, Media, Submitted
from app.providers.everypixel import EverypixelAdapter
from app.providers.imagepipeline import ImagePipelineAdapter
from app.providers.media_limits import (
    AVI,
    EVERYPIXEL_VIDEO_KEYWORDS,
    IMAGEPIPELINE_VOICE_REFERENCE,
    MOV,
    MP3,
    MP4,
    MPEG,
    WAV,
    WEBM,
    AvLimits,
)
from app.store.adapter_state import RedisAdapterState
from tests.utils import av_media
from tests.utils.media_source import PUBLISHED, DictMedia

DOCS = Path(__file__).resolve().parents[2] / "docs" / "upstream"
BASE = "https://api.imagepipeline.io"
VOICE = "/identity/voice/clone/v1"


def _wav_info(content: bytes) -> tuple[int, int, float]:
    with wave.open(io.BytesIO(content)) as wav:
        return wav.getnchannels(), wav.getframerate(), wav.getnframes() / wav.getframerate()


@pytest.mark.parametrize("row", [EVERYPIXEL_VIDEO_KEYWORDS, IMAGEPIPELINE_VOICE_REFERENCE])
def test_every_row_cites_the_line_that_says_it(row: AvLimits) -> None:
    cite = row.cite
    assert cite is not None and cite.line is not None
    lines = (DOCS / f"{cite.source}.txt").read_text(encoding="utf-8").splitlines()
    assert cite.words in lines[cite.line - 1]


def test_everypixel_video_keywording_takes_the_documents_four_types_up_to_100_mb() -> None:
    row = EverypixelAdapter.media_limits[Operation.video_keywords]["video"]
    assert row is EVERYPIXEL_VIDEO_KEYWORDS
    assert [row.takes(t) for t in (MP4, MPEG, MOV, AVI, "video/avi")] == [True] * 5
    assert not row.takes(WEBM)  # not in the document's list: refused, never converted
    assert row.max_bytes == 100_000_000
    assert (row.min_duration_s, row.max_duration_s) == (None, None)  # 5–60 s: recommended
    assert row.names() == "MP4, MPEG, MOV, AVI"


def test_imagepipeline_takes_wav_and_converts_other_audio() -> None:
    row = ImagePipelineAdapter.media_limits[Operation.audio_clone_voice]["reference_audio"]
    assert row is IMAGEPIPELINE_VOICE_REFERENCE
    assert not row.needs_conversion(WAV) and not row.needs_conversion("audio/x-wav")
    assert row.takes(MP3) and row.needs_conversion(MP3)
    assert not row.takes("video/mp4")


@pytest.mark.parametrize("kind", ["mp3", "ogg", "flac", "m4a"])
def test_other_audio_is_converted_to_pcm_wav_of_the_same_length(kind: str) -> None:
    source = av_media.audio(kind, seconds=1.5)
    declared = {"mp3": MP3, "ogg": "audio/ogg", "flac": "audio/flac", "m4a": "audio/mp4"}[kind]
    result = conform_audio(Media(source, declared), IMAGEPIPELINE_VOICE_REFERENCE, "file_a")
    assert result.media.content_type == WAV
    assert result.media.content[:4] == b"RIFF" and result.media.content[8:12] == b"WAVE"
    channels, rate, seconds = _wav_info(result.media.content)
    assert channels == 1
    assert rate == av_media.AUDIO_FORMATS[kind][2]
    assert seconds == pytest.approx(1.5, abs=0.05)  # encoders pad to whole frames
    change = result.change
    assert change is not None and change.input == "file_a"
    assert (change.before.content_type, change.before.bytes) == (declared, len(source))
    assert (change.after.content_type, change.after.bytes) == (WAV, len(result.media.content))
    assert change.after.duration_s == pytest.approx(seconds, abs=0.001)


def test_a_wav_is_sent_untouched_whatever_its_server_called_it() -> None:
    source = av_media.audio("wav")
    for declared in (WAV, "application/octet-stream", MP3):
        result = conform_audio(Media(source, declared), IMAGEPIPELINE_VOICE_REFERENCE)
        assert result.change is None and result.media.content is source


@pytest.mark.parametrize(
    ("content", "declared"),
    [
        (b"not audio at all", MP3),
        (av_media.video("mp4"), "video/mp4"),  # a video without sound
        (av_media.audio("mp3")[:200], MP3),  # cut short: no whole frame
    ],
)
def test_what_is_not_audio_ffmpeg_decodes_is_refused(content: bytes, declared: str) -> None:
    with pytest.raises(UnconvertibleAudio):
        conform_audio(Media(content, declared), IMAGEPIPELINE_VOICE_REFERENCE)


async def test_the_conversion_is_recorded_on_the_call() -> None:
    mp3 = av_media.audio("mp3")
    ref = AudioInput(file_id="file_voice")
    call = Call(
        job_id="job_1",
        operation=Operation.audio_clone_voice,
        params=CloneVoice(text="Hi.", reference_audio=ref),
        media=DictMedia({"file_voice": Media(mp3, MP3)}),
    )
    converted = await read_conformed_audio(call, ref, IMAGEPIPELINE_VOICE_REFERENCE)
    assert converted is not None and converted.content_type == WAV
    [change] = call.conformed
    assert change.input == "file_voice"
    assert change.before.content_type == MP3 and change.after.content_type == WAV


@pytest.fixture
async def adapter(redis_client: Redis) -> AsyncIterator[ImagePipelineAdapter]:
    async with httpx.AsyncClient() as client:
        config = AdapterConfig(base_url=BASE, credentials=(Credential(api_key="k"),))
        yield ImagePipelineAdapter(client, config, RedisAdapterState(redis_client, "imagepipeline"))


def _voice_call(media: DictMedia, ref: AudioInput) -> Call:
    params = CloneVoice(text="Hello from my cloned voice.", reference_audio=ref)
    return Call(job_id="job_1", operation=Operation.audio_clone_voice, params=params, media=media)


async def test_imagepipeline_is_sent_a_url_of_the_wav_made_of_an_mp3(
    adapter: ImagePipelineAdapter,
) -> None:
    url = "https://files.example/voice.mp3"
    media = DictMedia({}, {url: Media(av_media.audio("mp3"), MP3)})
    call = _voice_call(media, AudioInput(url=url))
    with respx.mock(base_url=BASE, assert_all_mocked=True) as router:
        route = router.post(VOICE).mock(
            return_value=httpx.Response(200, json={"job_id": "job_v", "status": "queued"})
        )
        result = await adapter.submit(call)
    assert isinstance(result, Submitted)
    sent = json.loads(route.calls.last.request.content)
    assert sent["reference_voice_url"] == PUBLISHED.format(n=1)
    [published] = media.published
    assert published.content_type == WAV and published.content[8:12] == b"WAVE"
    [change] = call.conformed
    assert change.input == url and change.before.content_type == MP3


async def test_imagepipeline_is_sent_the_clients_own_url_of_a_wav(
    adapter: ImagePipelineAdapter,
) -> None:
    url = "https://files.example/voice.wav"
    media = DictMedia({}, {url: Media(av_media.audio("wav"), "audio/x-wav")})
    call = _voice_call(media, AudioInput(url=url))
    with respx.mock(base_url=BASE, assert_all_mocked=True) as router:
        route = router.post(VOICE).mock(
            return_value=httpx.Response(200, json={"job_id": "job_v", "status": "queued"})
        )
        await adapter.submit(call)
    assert json.loads(route.calls.last.request.content)["reference_voice_url"] == url
    assert media.published == [] and call.conformed == []


async def test_a_reference_that_is_not_audio_fails_before_anything_is_sent(
    adapter: ImagePipelineAdapter,
) -> None:
    media = DictMedia({"file_x": Media(b"%PDF-1.7 not audio", MP3)})
    call = _voice_call(media, AudioInput(file_id="file_x"))
    with respx.mock(base_url=BASE, assert_all_mocked=True, assert_all_called=False) as router:
        route = router.post(VOICE)
        result = await adapter.submit(call)
    assert isinstance(result, Failed) and result.code is ErrorCode.invalid_media
    assert not result.retryable and route.call_count == 0


def test_imagepipeline_reads_the_voice_reference_and_nothing_else() -> None:
    ref = AudioInput(url="https://files.example/v.ogg")
    params = CloneVoice(text="t", reference_audio=ref)
    assert ImagePipelineAdapter.reads(
        ImagePipelineAdapter.__new__(ImagePipelineAdapter), Operation.audio_clone_voice, params
    ) == [ref]
