"""The ImagePipeline emulator over ASGI: the key check, the documented bodies and validation,
inputs fetched from their URLs, the job lifecycle and balance, real results, webhooks, faults,
counters, and the adapter talking to it."""

from __future__ import annotations

import asyncio
import io
import json
import time
import wave
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image
from redis.asyncio import Redis

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.media import AudioInput, ImageInput
from app.domain.operations import (
    CloneVoice,
    Instamodel,
    LockIdentity,
    Operation,
    Params,
    ReplaceIdentity,
    SwapFace,
    TryOn,
)
from app.providers.base import (
    AdapterConfig,
    Call,
    Credential,
    Failed,
    Media,
    PollTrouble,
    Progress,
    ProviderBalance,
    Submitted,
    Succeeded,
)
from app.providers.imagepipeline import ImagePipelineAdapter
from app.sandbox import av, images
from app.sandbox import imagepipeline as emulator
from app.sandbox.credentials import IMAGEPIPELINE_API_KEY
from app.sandbox.timing import SandboxTiming
from app.store.adapter_state import RedisAdapterState
from tests.sandbox.conftest import BASE
from tests.utils import av_media
from tests.utils.clock import Clock
from tests.utils.media import png_bytes
from tests.utils.media_source import DictMedia
from tests.utils.sandbox import CONTROL, sandbox_app

ROOT = "/_sandbox/imagepipeline"
AUTH = {"X-API-Key": IMAGEPIPELINE_API_KEY}
JOB_S = 0.2
FILES = "http://files.test"
HOOKS = "http://hooks.test"

FACESWAP = "/identity/faceswap/image/v1"
LOCK = "/identity/lock/image/v1"
REPLACE = "/identity/replace/image/v1"
INSTAMODEL = "/creator/instamodel/image/v1"
TRYON = "/creator/tryon/image/v1"
VOICE = "/identity/voice/clone/v1"

SERVED: dict[str, tuple[bytes, str]] = {
    "/face.png": (images.render(64, 64, "png", seed=1), "image/png"),
    "/scene.jpg": (images.render(300, 200, "jpeg", seed=2), "image/jpeg"),
    "/person.webp": (images.render(320, 480, "webp", seed=3), "image/webp"),
    "/jacket.png": (images.render(100, 100, "png", seed=4), "image/png"),
    "/blank.png": (png_bytes(40, 40, color=(200, 200, 200)), "image/png"),
    "/sample.wav": (av.wav_bytes(1.0), "audio/wav"),
    "/sample.mp3": (av_media.audio("mp3"), "audio/mpeg"),
    "/notes.txt": (b"not a picture", "text/plain"),
}


class Outside:
    """The internet the emulator sees: input files, and webhook receivers that record events."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.events: list[dict[str, Any]] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if request.url.host == "down.test":
            raise httpx.ConnectError("connection refused", request=request)
        if url.startswith(HOOKS):
            self.events.append(json.loads(request.content))
            return httpx.Response(204)
        self.fetched.append(url)
        served = SERVED.get(request.url.path)
        if served is None:
            return httpx.Response(404, text="Not Found")
        content, content_type = served
        return httpx.Response(200, content=content, headers={"content-type": content_type})

    async def event(self, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self.events:
            if time.monotonic() > deadline:
                raise AssertionError("no webhook arrived")
            await asyncio.sleep(0.02)
        return self.events.pop(0)


@pytest.fixture
async def outside(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Outside]:
    world = Outside()
    async with httpx.AsyncClient(transport=httpx.MockTransport(world.handle)) as client:
        monkeypatch.setattr(emulator, "http_client", client)
        yield world


@pytest.fixture
def sandbox_timing(outside: Outside) -> SandboxTiming:
    """Jobs of ``JOB_S``; every request the emulator makes goes to ``outside``."""
    return SandboxTiming(job_s=JOB_S)


FACESWAP_BODY = {"target": f"{FILES}/scene.jpg", "source": f"{FILES}/face.png"}
BODIES: dict[str, dict[str, Any]] = {
    FACESWAP: FACESWAP_BODY,
    LOCK: {"input_image": f"{FILES}/face.png", "prompt": "as a firefighter, photoreal"},
    REPLACE: {"input_image": f"{FILES}/scene.jpg", "prompt": "caucasian woman with green eyes"},
    INSTAMODEL: {"input_face": f"{FILES}/face.png", "prompt": "streetwear lookbook"},
    TRYON: {
        "person_image": f"{FILES}/person.webp",
        "clothing_image": f"{FILES}/jacket.png",
        "gender": "woman",
        "clothing_type": "denim jacket",
    },
    VOICE: {"text": "Hello from my cloned voice.", "reference_voice_url": f"{FILES}/sample.wav"},
}


async def _submit(
    client: httpx.AsyncClient, endpoint: str, headers: dict[str, str] = AUTH, **body: Any
) -> httpx.Response:
    return await client.post(f"{ROOT}{endpoint}", headers=headers, json=BODIES[endpoint] | body)


async def _poll(client: httpx.AsyncClient, endpoint: str, job_id: str) -> httpx.Response:
    return await client.get(f"{ROOT}{endpoint}/status/{job_id}", headers=AUTH)


async def _until_done(client: httpx.AsyncClient, endpoint: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await _poll(client, endpoint, job_id)).json()
        if body["status"] not in ("queued", "pending", "processing"):
            return body
        await asyncio.sleep(0.03)
    raise AssertionError("the job never finished")


async def _result(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    assert body["status"] == "completed", body
    response = await client.get(body["result_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == body["result_mime_type"]
    return response


def _image(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


async def _arm(client: httpx.AsyncClient, fault: str, count: int = 1) -> None:
    body = {"provider": "imagepipeline", "fault": fault, "count": count}
    assert (await client.post("/_sandbox/faults", json=body, headers=CONTROL)).status_code == 204


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return stats.get("imagepipeline", {"requests": 0, "submissions": 0, "by_endpoint": {}})


# key -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 401, "Not authenticated"),
        ({"X-API-Key": "wrong"}, 403, "Invalid API key"),
        ({"Authorization": f"Bearer {IMAGEPIPELINE_API_KEY}"}, 401, "Not authenticated"),
    ],
)
async def test_a_missing_or_wrong_key_is_refused(
    sandbox: httpx.AsyncClient, headers: dict[str, str], status: int, detail: str
) -> None:
    submitted = await _submit(sandbox, LOCK, headers=headers)
    polled = await sandbox.get(f"{ROOT}{LOCK}/status/job_00000000", headers=headers)
    for response in (submitted, polled):
        assert response.status_code == status
        assert response.json() == {"detail": detail}
    assert (await _stats(sandbox))["submissions"] == 0


# lifecycle, balance and results ----------------------------------------------------------------


async def test_faceswap_lifecycle_balance_and_result(
    sandbox: httpx.AsyncClient, clock: Clock, outside: Outside
) -> None:
    submitted = await _submit(sandbox, FACESWAP, upscale=1.5, restore_weight=0.5)
    assert submitted.status_code == 200, submitted.text
    queued = submitted.json()
    assert queued.keys() == {
        "job_id", "status", "endpoint", "estimated_time_seconds", "queued_at"
    }  # fmt: skip
    assert (queued["status"], queued["endpoint"]) == ("queued", FACESWAP)
    assert queued["job_id"].startswith("job_")
    assert outside.fetched == [f"{FILES}/scene.jpg", f"{FILES}/face.png"]
    job_id = queued["job_id"]

    seen = []
    for step in (0.0, 0.15, 0.5):
        clock.now += JOB_S * step
        body = (await _poll(sandbox, FACESWAP, job_id)).json()
        assert body["result_url"] is None and body["balance_remaining_usd"] == 200.0
        seen.append((body["status"], body["progress"]))
    assert seen[0] == ("queued", 0)
    assert seen[1] == ("pending", 0)
    assert seen[2][0] == "processing" and 0 < seen[2][1] < 100

    clock.now += JOB_S
    done = (await _poll(sandbox, FACESWAP, job_id)).json()
    assert done["status"] == "completed"
    assert done["progress"] == 100
    assert done["result_mime_type"] == "image/webp"
    assert done["result_url"].startswith(f"{BASE}{ROOT}/o/")
    assert done["processing_time_seconds"] == pytest.approx(JOB_S)
    assert (done["credits_charged"], done["credits_amount"]) == (True, 23)
    assert done["balance_remaining_usd"] == pytest.approx(199.977)

    image = _image((await _result(sandbox, done)).content)
    assert (image.format, image.size) == ("WEBP", (450, 300))
    again = (await _poll(sandbox, FACESWAP, job_id)).json()
    assert again["balance_remaining_usd"] == pytest.approx(199.977), "charged once"


@pytest.mark.parametrize(
    ("endpoint", "extra", "fmt", "size"),
    [
        (FACESWAP, {"upscale": 4.0, "output_format": "png"}, "PNG", (1200, 800)),
        (LOCK, {"width": 512, "height": 256, "seed": 7, "negative_prompt": "blur",
                "num_inference_steps": 20, "guidance_scale": 5, "palette": ["#ff0000"]},
         "WEBP", (512, 256)),
        (REPLACE, {"output_format": "jpeg", "use_segmentation": False, "tone_correction": 0.5},
         "JPEG", (300, 200)),
        (INSTAMODEL, {"width": 384, "profile_id": "prof_1"}, "WEBP", (384, 1024)),
        (TRYON, {}, "WEBP", (320, 480)),
        (TRYON, {"width": 256, "height": 300, "output_format": "png"}, "PNG", (256, 300)),
    ],
)  # fmt: skip
async def test_each_image_endpoint_completes_with_a_real_image(
    sandbox: httpx.AsyncClient,
    endpoint: str,
    extra: dict[str, Any],
    fmt: str,
    size: tuple[int, int],
) -> None:
    submitted = await _submit(sandbox, endpoint, **extra)
    assert submitted.status_code == 200, submitted.text
    done = await _until_done(sandbox, endpoint, submitted.json()["job_id"])
    image = _image((await _result(sandbox, done)).content)
    assert (image.format, image.size) == (fmt, size)


async def test_voice_clone_completes_with_a_wav(sandbox: httpx.AsyncClient) -> None:
    submitted = await _submit(
        sandbox, VOICE, language_id="ja", exaggeration=0.9, apply_watermark=False
    )
    assert submitted.status_code == 200, submitted.text
    done = await _until_done(sandbox, VOICE, submitted.json()["job_id"])
    assert (done["result_mime_type"], done["credits_amount"]) == ("audio/wav", 7)
    assert done["result_url"].endswith(".wav")
    response = await _result(sandbox, done)
    with wave.open(io.BytesIO(response.content)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert seconds == pytest.approx(len(BODIES[VOICE]["text"]) / 15, abs=0.01)


async def test_max_new_tokens_caps_the_speech(sandbox: httpx.AsyncClient) -> None:
    submitted = await _submit(sandbox, VOICE, text="word " * 200, max_new_tokens=25)
    done = await _until_done(sandbox, VOICE, submitted.json()["job_id"])
    with wave.open(io.BytesIO((await _result(sandbox, done)).content)) as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(1.0)


async def test_jobs_are_polled_under_their_own_endpoint(sandbox: httpx.AsyncClient) -> None:
    job_id = (await _submit(sandbox, LOCK)).json()["job_id"]
    elsewhere = await _poll(sandbox, FACESWAP, job_id)
    unknown = await _poll(sandbox, LOCK, "job_nothere")
    for response in (elsewhere, unknown):
        assert response.status_code == 404
        assert response.json() == {"detail": "Job not found"}
    early = await sandbox.get(f"{ROOT}/o/nothing.webp")
    assert early.status_code == 404


async def test_results_need_no_key(sandbox: httpx.AsyncClient) -> None:
    job_id = (await _submit(sandbox, INSTAMODEL, width=64, height=64)).json()["job_id"]
    done = await _until_done(sandbox, INSTAMODEL, job_id)
    response = await sandbox.get(done["result_url"])
    assert "x-api-key" not in response.request.headers
    assert response.status_code == 200


async def test_the_balance_runs_out(
    monkeypatch: pytest.MonkeyPatch, outside: Outside, clock: Clock
) -> None:
    monkeypatch.setattr(emulator, "START_BALANCE_USD", 0.03)
    app = sandbox_app(SandboxTiming(job_s=JOB_S))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        first = (await _submit(client, FACESWAP)).json()["job_id"]
        clock.now += JOB_S
        done = (await _poll(client, FACESWAP, first)).json()
        assert done["balance_remaining_usd"] == pytest.approx(0.007)
        second = (await _submit(client, FACESWAP)).json()
        assert second["status"] == "queued"
        refused = (await _poll(client, FACESWAP, second["job_id"])).json()
        stats = await _stats(client)
    assert refused["status"] == "failed"
    assert (refused["failure_reason_code"], refused["retryable"]) == ("INSUFFICIENT_CREDITS", False)
    assert (refused["credits_charged"], refused["credits_amount"]) == (False, 0)
    assert refused["balance_remaining_usd"] == pytest.approx(0.007)
    assert stats["submissions"] == 1


async def test_a_completion_the_balance_cannot_cover_fails_the_charge(
    monkeypatch: pytest.MonkeyPatch, outside: Outside, clock: Clock
) -> None:
    monkeypatch.setattr(emulator, "START_BALANCE_USD", 0.03)
    app = sandbox_app(SandboxTiming(job_s=JOB_S))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        jobs = [(await _submit(client, FACESWAP)).json()["job_id"] for _ in range(2)]
        clock.now += JOB_S
        ends = [(await _poll(client, FACESWAP, job_id)).json() for job_id in jobs]
    assert [e["status"] for e in ends] == ["completed", "failed"]
    assert ends[1]["failure_reason_code"] == "CREDIT_CHARGE_FAILED"


# validation and inputs -------------------------------------------------------------------------


async def test_a_missing_field_is_the_documented_422(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        f"{ROOT}{LOCK}", headers=AUTH, json={"input_image": f"{FILES}/face.png"}
    )
    assert response.status_code == 422
    missing = {"loc": ["body", "prompt"], "msg": "field required", "type": "value_error.missing"}
    assert response.json() == {"detail": [missing]}


@pytest.mark.parametrize(
    ("endpoint", "extra", "field"),
    [
        (FACESWAP, {"upscale": 4.5}, "upscale"),
        (FACESWAP, {"restore_weight": -0.1}, "restore_weight"),
        (FACESWAP, {"palette": ["red"]}, "palette"),
        (FACESWAP, {"output_format": "gif"}, "output_format"),
        (FACESWAP, {"source": "ftp://files.test/face.png"}, "source"),
        (LOCK, {"width": 4096}, "width"),
        (LOCK, {"num_inference_steps": 101}, "num_inference_steps"),
        (LOCK, {"guidance_scale": 0.5}, "guidance_scale"),
        (LOCK, {"seed": -2}, "seed"),
        (LOCK, {"prompt": ""}, "prompt"),
        (REPLACE, {"tone_correction": 1.5}, "tone_correction"),
        (INSTAMODEL, {"height": 3000}, "height"),
        (TRYON, {"gender": "other"}, "gender"),
        (TRYON, {"width": 128}, "width"),
        (VOICE, {"exaggeration": 2}, "exaggeration"),
        (VOICE, {"max_new_tokens": 0}, "max_new_tokens"),
        (VOICE, {"callback_url": "not a url"}, "callback_url"),
    ],
)
async def test_out_of_range_fields_are_422_naming_them(
    sandbox: httpx.AsyncClient, endpoint: str, extra: dict[str, Any], field: str
) -> None:
    response = await _submit(sandbox, endpoint, **extra)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error.keys() == {"loc", "msg", "type"}
    assert error["loc"][:2] == ["body", field]
    assert (await _stats(sandbox))["submissions"] == 0


@pytest.mark.parametrize(
    ("endpoint", "extra", "field", "kind"),
    [
        (FACESWAP, {"target": f"{FILES}/gone.png"}, "target", "value_error.url.fetch"),
        (REPLACE, {"input_image": f"{FILES}/notes.txt"}, "input_image", "value_error.image"),
        (TRYON, {"clothing_image": f"{FILES}/sample.wav"}, "clothing_image", "value_error.image"),
        (VOICE, {"reference_voice_url": f"{FILES}/face.png"}, "reference_voice_url",
         "value_error.audio"),
        (VOICE, {"reference_voice_url": f"{FILES}/sample.mp3"}, "reference_voice_url",
         "value_error.audio"),  # audio, but not the document's WAV
        (VOICE, {"reference_voice_url": f"{FILES}/gone.wav"}, "reference_voice_url",
         "value_error.url.fetch"),
    ],
)  # fmt: skip
async def test_inputs_that_cannot_be_had_are_422(
    sandbox: httpx.AsyncClient, endpoint: str, extra: dict[str, Any], field: str, kind: str
) -> None:
    response = await _submit(sandbox, endpoint, **extra)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", field], kind)
    assert (await _stats(sandbox))["submissions"] == 0


async def test_bodies_that_are_not_json(sandbox: httpx.AsyncClient) -> None:
    form = await sandbox.post(f"{ROOT}{LOCK}", headers=AUTH, data={"prompt": "p"})
    assert form.status_code == 400
    assert form.json() == {"detail": "Content-Type must be application/json"}
    broken = await sandbox.post(
        f"{ROOT}{LOCK}",
        headers={**AUTH, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert broken.status_code == 422
    listed = await sandbox.post(f"{ROOT}{LOCK}", headers=AUTH, json=["prompt"])
    assert listed.status_code == 422


async def test_a_faceless_picture_fails_the_job_unbilled(sandbox: httpx.AsyncClient) -> None:
    submitted = await _submit(sandbox, INSTAMODEL, input_face=f"{FILES}/blank.png")
    assert submitted.status_code == 200
    done = await _until_done(sandbox, INSTAMODEL, submitted.json()["job_id"])
    assert (done["status"], done["failure_reason_code"], done["retryable"]) == (
        "failed",
        "INPUT_INVALID",
        False,
    )
    assert done["error"].startswith("No face detected")
    assert done["balance_remaining_usd"] == 200.0
    assert (await sandbox.get(done.get("result_url") or f"{ROOT}/o/x")).status_code == 404


# webhooks --------------------------------------------------------------------------------------


async def test_the_webhook_is_posted_when_the_job_completes(
    sandbox: httpx.AsyncClient, outside: Outside
) -> None:
    submitted = await _submit(sandbox, REPLACE, callback_url=f"{HOOKS}/done")
    event = await outside.event()
    assert event.keys() == {
        "job_id", "user_id", "status", "result_url", "result_mime_type", "result_size_bytes",
        "balance_remaining_usd", "timestamp",
    }  # fmt: skip
    assert (event["job_id"], event["status"]) == (submitted.json()["job_id"], "completed")
    result = await sandbox.get(event["result_url"])
    assert len(result.content) == event["result_size_bytes"]
    assert event["balance_remaining_usd"] == pytest.approx(199.967)


async def test_the_webhook_reports_a_failure(sandbox: httpx.AsyncClient, outside: Outside) -> None:
    await _arm(sandbox, "blocked")
    await _submit(sandbox, LOCK, callback_url=f"{HOOKS}/done")
    event = await outside.event()
    assert event["status"] == "failed"
    assert (event["failure_reason_code"], event["error"]) == (
        "INPUT_INVALID",
        "Prompt rejected by content policy.",
    )


async def test_an_unreachable_webhook_is_ignored(
    sandbox: httpx.AsyncClient, outside: Outside
) -> None:
    submitted = await _submit(sandbox, LOCK, callback_url="http://down.test/hook")
    done = await _until_done(sandbox, LOCK, submitted.json()["job_id"])
    await asyncio.sleep(0.2)
    assert done["status"] == "completed"
    assert (await _poll(sandbox, LOCK, done["job_id"])).json()["status"] == "completed"
    assert outside.events == []


# faults ----------------------------------------------------------------------------------------


async def test_fault_http_500_refuses_the_submission(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "http_500")
    failed = await _submit(sandbox, LOCK)
    assert failed.status_code == 500
    assert failed.json() == {"detail": "Internal Server Error"}
    assert (await _submit(sandbox, LOCK)).status_code == 200
    assert (await _stats(sandbox))["submissions"] == 1


async def test_fault_garbage_is_200_without_json(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "garbage")
    response = await _submit(sandbox, LOCK)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


async def test_fault_timeout_never_answers(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "timeout")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_submit(sandbox, LOCK), timeout=0.3)


@pytest.mark.parametrize(
    ("fault", "endpoint", "code", "error", "billable"),
    [
        ("rate_limit", LOCK, "RATE_LIMIT_EXCEEDED", "Too many requests", False),
        ("no_credits", LOCK, "INSUFFICIENT_CREDITS", "Insufficient credits", False),
        ("blocked", LOCK, "INPUT_INVALID", "Prompt rejected by content policy.", True),
        ("blocked", VOICE, "INPUT_INVALID", "Text rejected by content policy.", True),
        ("no_face", FACESWAP, "INPUT_INVALID", "No face detected", True),
        ("no_face", VOICE, "INPUT_INVALID", "No speech detected", True),
    ],
)
async def test_faults_on_a_submission_fail_the_job(
    sandbox: httpx.AsyncClient,
    fault: str,
    endpoint: str,
    code: str,
    error: str,
    billable: bool,
) -> None:
    await _arm(sandbox, fault)
    submitted = await _submit(sandbox, endpoint)
    assert submitted.json()["status"] == "queued"
    done = await _until_done(sandbox, endpoint, submitted.json()["job_id"])
    assert (done["status"], done["failure_reason_code"]) == ("failed", code)
    assert done["error"].startswith(error)
    assert done["balance_remaining_usd"] == 200.0
    assert (await _stats(sandbox))["submissions"] == int(billable)


async def test_faults_on_a_poll(sandbox: httpx.AsyncClient, clock: Clock) -> None:
    job_id = (await _submit(sandbox, LOCK)).json()["job_id"]
    await _arm(sandbox, "http_500")
    assert (await _poll(sandbox, LOCK, job_id)).status_code == 500
    await _arm(sandbox, "rate_limit")
    limited = await _poll(sandbox, LOCK, job_id)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["detail"]["failure_reason_code"] == "RATE_LIMIT_EXCEEDED"
    await _arm(sandbox, "no_credits")
    charged = (await _poll(sandbox, LOCK, job_id)).json()
    assert (charged["status"], charged["failure_reason_code"]) == ("failed", "CREDIT_CHARGE_FAILED")
    await _arm(sandbox, "blocked")
    clock.now += 10
    assert (await _poll(sandbox, LOCK, job_id)).json()["failure_reason_code"] == (
        "CREDIT_CHARGE_FAILED"
    ), "a finished job keeps its outcome"


async def test_stats_count_requests_and_submissions(sandbox: httpx.AsyncClient) -> None:
    job_id = (await _submit(sandbox, FACESWAP)).json()["job_id"]
    await _poll(sandbox, FACESWAP, job_id)
    await _poll(sandbox, FACESWAP, job_id)
    await _submit(sandbox, VOICE, headers={})
    await _submit(sandbox, TRYON, gender="x")
    stats = await _stats(sandbox)
    assert (stats["requests"], stats["submissions"]) == (5, 1)
    assert stats["by_endpoint"] == {
        FACESWAP: 1,
        f"{FACESWAP}/status/{{job_id}}": 2,
        VOICE: 1,
        TRYON: 1,
    }


# the adapter against the emulator --------------------------------------------------------------

FACE = ImageInput(url=f"{FILES}/face.png")
SCENE = ImageInput(url=f"{FILES}/scene.jpg")
PERSON = ImageInput(url=f"{FILES}/person.webp")
JACKET = ImageInput(url=f"{FILES}/jacket.png")
BLANK = ImageInput(url=f"{FILES}/blank.png")
SAMPLE = AudioInput(url=f"{FILES}/sample.wav")


@pytest.fixture
async def adapter(
    sandbox: httpx.AsyncClient, redis_client: Redis
) -> AsyncIterator[ImagePipelineAdapter]:
    config = AdapterConfig(
        base_url=f"{BASE}{ROOT}",
        credentials=(Credential(api_key=IMAGEPIPELINE_API_KEY),),
        timeout_s=5,
        poll_interval_s=0.02,
    )
    yield ImagePipelineAdapter(sandbox, config, RedisAdapterState(redis_client, "imagepipeline"))


async def _run(
    adapter: ImagePipelineAdapter,
    operation: Operation,
    params: Params,
    callback_url: str | None = None,
) -> Succeeded | Failed | PollTrouble:
    served = {f"{FILES}{path}": Media(*file) for path, file in SERVED.items()}
    call = Call("job_1", operation, params, DictMedia({}, served), callback_url=callback_url)
    submitted = await adapter.submit(call)
    if isinstance(submitted, Failed):
        return submitted
    assert isinstance(submitted, Submitted), submitted
    for _ in range(300):
        result = await adapter.poll(call, submitted.provider_job_id)
        if not isinstance(result, Progress):
            assert not isinstance(result, Submitted)
            return result
        await asyncio.sleep(result.poll_after_s)
    raise AssertionError("the adapter never saw the job finish")


@pytest.mark.parametrize(
    ("operation", "params", "content_type", "size"),
    [
        (Operation.image_swap_face, SwapFace(source=FACE, target=SCENE, upscale=False),
         "image/webp", (300, 200)),
        (Operation.image_swap_face, SwapFace(source=FACE, target=SCENE, scale=2.0,
                                             enhance_face=False, output_format="jpeg"),
         "image/jpeg", (600, 400)),
        (Operation.image_lock_identity, LockIdentity(face=FACE, prompt="p", width=256,
                                                     height=128, steps=10, palette=["#abc"]),
         "image/webp", (256, 128)),
        (Operation.image_replace_identity, ReplaceIdentity(image=SCENE, prompt="p",
                                                           use_segmentation=False,
                                                           output_format="png"),
         "image/png", (300, 200)),
        (Operation.image_instamodel, Instamodel(face=FACE, prompt="p", width=200, height=300),
         "image/webp", (200, 300)),
        (Operation.image_try_on, TryOn(person=PERSON, garment=JACKET, gender="female",
                                       category="full_body", output_format="png"),
         "image/png", (320, 480)),
    ],
)  # fmt: skip
async def test_the_adapter_runs_every_image_binding_against_the_emulator(
    sandbox: httpx.AsyncClient,
    adapter: ImagePipelineAdapter,
    operation: Operation,
    params: Params,
    content_type: str,
    size: tuple[int, int],
) -> None:
    assert adapter.bindings[operation].refuses(params) is None
    result = await _run(adapter, operation, params)
    assert isinstance(result, Succeeded), result
    [output] = result.files
    assert output.content_type == content_type
    assert _image(output.content).size == size
    stats = await _stats(sandbox)
    assert stats["submissions"] == 1
    assert stats["by_endpoint"]["/o/{name}"] == 1
    price = adapter.bindings[operation].price
    assert await adapter.balance() == ProviderBalance(round(200 - price / 1000, 3), "usd")


async def test_the_adapter_clones_a_voice_against_the_emulator(
    adapter: ImagePipelineAdapter,
) -> None:
    params = CloneVoice(
        text="Hello there, friend.",
        reference_audio=SAMPLE,
        language="en-GB",
        exaggeration=0.7,
        watermark=False,
        max_new_tokens=100,
    )
    result = await _run(adapter, Operation.audio_clone_voice, params)
    assert isinstance(result, Succeeded), result
    [output] = result.files
    assert output.content_type == "audio/wav"
    with wave.open(io.BytesIO(output.content)) as wav:
        assert wav.getnframes() > 0
    assert await adapter.balance() == ProviderBalance(199.993, "usd")


async def test_the_adapter_passes_the_callback_url(
    adapter: ImagePipelineAdapter, outside: Outside
) -> None:
    params = Instamodel(face=FACE, prompt="p", width=64, height=64)
    result = await _run(adapter, Operation.image_instamodel, params, f"{HOOKS}/cb/tok")
    assert isinstance(result, Succeeded)
    assert (await outside.event())["status"] == "completed"


async def test_the_adapter_reads_the_emulators_refusals(
    sandbox: httpx.AsyncClient, adapter: ImagePipelineAdapter
) -> None:
    lock = LockIdentity(face=FACE, prompt="p", width=64, height=64)
    # the document names no failure_reason_code: each is kept on the failure, not read
    expectations = [
        ("blocked", "INPUT_INVALID"),
        ("no_face", "INPUT_INVALID"),
        ("rate_limit", "RATE_LIMIT_EXCEEDED"),
        ("no_credits", "INSUFFICIENT_CREDITS"),
    ]
    for fault, provider_code in expectations:
        await _arm(sandbox, fault)
        failed = await _run(adapter, Operation.image_lock_identity, lock)
        assert isinstance(failed, Failed), fault
        assert (failed.code, failed.retryable, failed.provider_code) == (
            ErrorCode.upstream_failed,
            True,
            provider_code,
        ), fault

    faceless = await _run(
        adapter, Operation.image_instamodel, Instamodel(face=BLANK, prompt="p", width=64)
    )
    assert isinstance(faceless, Failed)
    assert (faceless.code, faceless.provider_code) == (ErrorCode.upstream_failed, "INPUT_INVALID")

    missing = await _run(
        adapter, Operation.image_replace_identity, ReplaceIdentity(image=BLANK.model_copy(
            update={"url": f"{FILES}/gone.png"}), prompt="p")
    )  # fmt: skip
    assert isinstance(missing, Failed) and missing.code is ErrorCode.invalid_parameter
    assert "input_image" in missing.message

    await _arm(sandbox, "garbage")
    with pytest.raises(ProviderUnavailable):
        await _run(adapter, Operation.image_lock_identity, lock)

    wrong_key = ImagePipelineAdapter(
        sandbox,
        AdapterConfig(base_url=f"{BASE}{ROOT}", credentials=(Credential(api_key="wrong"),)),
        adapter.state,
    )
    refused = await _run(wrong_key, Operation.image_lock_identity, lock)
    assert isinstance(refused, Failed) and refused.code is ErrorCode.provider_auth_failed
    assert (await _stats(sandbox))["submissions"] == 3
