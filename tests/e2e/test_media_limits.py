"""Audio and video as the providers' documents take them, end to end against the emulators:
an AVI and a 40 MB MP4 go through Everypixel's video keywording (MP4, MPEG, MOV and AVI up to
100 MB, everypixel.txt 258), a WEBM is refused at intake; an MP3 and an OGG voice sample go
through ImagePipeline's voice cloning after conversion to WAV, which its emulator insists on
("reference voice audio (WAV)", imagepipeline.txt 413; it answers 422 to anything else)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.jobs import probe
from tests.utils import av_media
from tests.utils.deadlines import JOB_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_bytes
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway

pytestmark = pytest.mark.e2e

KEYWORDS = "/v1/analysis/video-keywords"
CLONE = "/v1/audio/clone-voice"
FORTY_MB = 40 * 1000 * 1000


@pytest.fixture(scope="session")
def forty_mb_mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Written once per session: noise frames at MPEG-4's finest quantiser."""
    path = av_media.padded_mp4(tmp_path_factory.mktemp("media") / "forty.mp4", FORTY_MB)
    return path.read_bytes()


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with gateway(with_db(redis_url, 15), tmp_path_factory.mktemp("media")) as proc:
        yield proc


def _inline(content: bytes) -> dict[str, str]:
    return {"data": base64.b64encode(content).decode()}


async def _submit(client: httpx.AsyncClient, route: str, body: dict[str, Any]) -> str:
    response = await client.post(route, json=body)
    assert response.status_code == 202, response.text[:500]
    return str(response.json()["id"])


async def test_an_avi_and_a_40_mb_mp4_go_through_everypixel_video_keywording(
    client: httpx.AsyncClient, forty_mb_mp4: bytes
) -> None:
    assert len(forty_mb_mp4) >= FORTY_MB
    avi = av_media.video("avi", seconds=6.0)
    ids = {}
    for name, content in (("avi", avi), ("mp4", forty_mb_mp4)):
        body = {"video": _inline(content), "provider": "everypixel", "num_keywords": 5}
        ids[name] = await _submit(client, KEYWORDS, body)
    jobs = await wait_all_terminal(client, ids.values(), JOB_S)
    for name, job_id in ids.items():
        job = jobs[job_id]
        assert job["status"] == "succeeded", (name, job.get("error"))
        assert job["provider"] == "everypixel"
        assert job["output"]["data"]["keywords"], name
    # priced per second of the video as probed at intake (not the 60 s cap)
    mp4_seconds = probe.duration_s(forty_mb_mp4, "video/mp4")
    for name, seconds in (("avi", 6.0), ("mp4", mp4_seconds)):
        credits = jobs[ids[name]]["credits"]
        assert credits["unit"] == "second"
        assert credits["quantity"] == pytest.approx(seconds, abs=0.05)


async def test_a_type_or_size_everypixel_does_not_take_is_refused_at_intake(
    client: httpx.AsyncClient,
) -> None:
    webm = av_media.video("webm")
    response = await client.post(KEYWORDS, json={"video": _inline(webm)})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "invalid_media"
    assert problem["errors"][0]["pointer"] == "/video/data"
    assert "MP4, MPEG, MOV, AVI" in problem["detail"]
    # an AVI to an operation whose provider's document names no AVI: the gateway's own types
    response = await client.post(
        "/v1/videos/swap-face",
        json={
            "source": _inline(png_bytes(64, 64)),
            "target": _inline(av_media.video("avi")),
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "/target/data"


@pytest.mark.parametrize("kind", ["mp3", "ogg"])
async def test_a_voice_sample_that_is_not_wav_is_converted_for_imagepipeline(
    client: httpx.AsyncClient, kind: str
) -> None:
    sample = av_media.audio(kind, seconds=2.0)
    body = {"text": "Hello from my cloned voice.", "reference_audio": _inline(sample)}
    job_id = await _submit(client, CLONE, {**body, "provider": "imagepipeline"})
    job = (await wait_all_terminal(client, [job_id], JOB_S))[job_id]
    assert job["status"] == "succeeded", job.get("error")
    [attempt] = job["attempts"]
    [change] = attempt["conformed"]
    assert change["before"]["content_type"] == {"mp3": "audio/mpeg", "ogg": "audio/ogg"}[kind]
    assert change["before"]["bytes"] == len(sample)
    assert change["after"]["content_type"] == "audio/wav"
    assert change["after"]["duration_s"] == pytest.approx(2.0, abs=0.05)
    [artifact] = job["output"]["artifacts"]
    assert artifact["content_type"] == "audio/wav"


async def test_a_wav_voice_sample_goes_as_it_is(client: httpx.AsyncClient) -> None:
    sample = av_media.audio("wav", seconds=1.0)
    body = {"text": "Hello.", "reference_audio": _inline(sample), "provider": "imagepipeline"}
    job_id = await _submit(client, CLONE, body)
    job = (await wait_all_terminal(client, [job_id], JOB_S))[job_id]
    assert job["status"] == "succeeded", job.get("error")
    assert job["attempts"][0]["conformed"] == []
