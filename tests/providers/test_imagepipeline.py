"""The ImagePipeline adapter against the request and response bodies of its document (respx)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from redis.asyncio import Redis

from app.domain.errors import ErrorCode, ProviderUnavailable, UpstreamTimeout
from app.domain.media import AudioInput, ImageInput
from app.domain.operations import (
    PARAMS,
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
    OutputFile,
    PollTrouble,
    Progress,
    ProviderBalance,
    Submitted,
    Succeeded,
)
from app.providers.imagepipeline import ImagePipelineAdapter
from app.sandbox.av import wav_bytes
from app.store.adapter_state import RedisAdapterState
from tests.utils.media_source import DictMedia

BASE = "https://api.imagepipeline.io"
KEY = "ip_test_key_0000"
OTHER_KEY = "ip_test_key_1111"
JOB_ID = "job_8f2a3c1b"
RESULT_URL = "https://cdn.imagepipeline.io/o/8f2a3c1b.webp"
WAV_URL = "https://cdn.imagepipeline.io/o/c50a91d7.wav"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 pretend pixels"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt pretend samples"

SCENE = ImageInput(url="https://files.example/scene.webp")
FACE = ImageInput(url="https://files.example/face.webp")
PERSON = ImageInput(url="https://files.example/person.webp")
JACKET = ImageInput(url="https://files.example/jacket.webp")
SAMPLE_URL = "https://files.example/sample.wav"
SAMPLE = AudioInput(url=SAMPLE_URL)

FACESWAP = "/identity/faceswap/image/v1"
LOCK = "/identity/lock/image/v1"
REPLACE = "/identity/replace/image/v1"
INSTAMODEL = "/creator/instamodel/image/v1"
TRYON = "/creator/tryon/image/v1"
VOICE = "/identity/voice/clone/v1"


def _call(
    operation: Operation, params: Params, callback_url: str | None = None, credential: int = 0
) -> Call:
    return Call(
        job_id="job_1",
        operation=operation,
        params=params,
        media=DictMedia({}, {SAMPLE_URL: Media(wav_bytes(1.0), "audio/wav")}),
        callback_url=callback_url,
        credential=credential,
    )


SWAP = _call(Operation.image_swap_face, SwapFace(source=FACE, target=SCENE))
CLONE = _call(Operation.audio_clone_voice, CloneVoice(text="Hello.", reference_audio=SAMPLE))


@pytest.fixture
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def adapter(redis_client: Redis) -> AsyncIterator[ImagePipelineAdapter]:
    config = AdapterConfig(
        base_url=BASE + "/",
        credentials=(Credential(api_key=KEY), Credential(api_key=OTHER_KEY)),
        timeout_s=5,
        poll_interval_s=2.5,
    )
    async with httpx.AsyncClient() as client:
        yield ImagePipelineAdapter(client, config, RedisAdapterState(redis_client, "imagepipeline"))


def _queued(endpoint: str = FACESWAP) -> httpx.Response:
    """The Jobs page's ``JobQueuedResponse``."""
    body = {
        "job_id": JOB_ID,
        "status": "queued",
        "endpoint": endpoint,
        "estimated_time_seconds": 8,
        "queued_at": "2026-05-30T12:00:00Z",
    }
    return httpx.Response(200, json=body)


def _failed(code: str, error: str, retryable: bool) -> httpx.Response:
    """The Errors page's failed ``JobStatusResponse``."""
    body = {
        "job_id": JOB_ID,
        "status": "failed",
        "error": error,
        "failure_reason_code": code,
        "retryable": retryable,
    }
    return httpx.Response(200, json=body)


def _sent(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


# submissions: the document's request bodies ----------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "params", "endpoint", "body"),
    [
        (
            Operation.image_swap_face,
            SwapFace(source=FACE, target=SCENE, scale=1.5, restore_weight=0.5),
            FACESWAP,
            {
                "target": "https://files.example/scene.webp",
                "source": "https://files.example/face.webp",
                "upscale": 1.5,
                "restore_weight": 0.5,
            },
        ),
        (
            Operation.image_lock_identity,
            LockIdentity(face=FACE, prompt="as a firefighter, photoreal"),
            LOCK,
            {"input_image": FACE.url, "prompt": "as a firefighter, photoreal"},
        ),
        (
            Operation.image_replace_identity,
            ReplaceIdentity(image=SCENE, prompt="caucasian woman with green eyes"),
            REPLACE,
            {
                "input_image": "https://files.example/scene.webp",
                "prompt": "caucasian woman with green eyes",
            },
        ),
        (
            Operation.image_instamodel,
            Instamodel(face=FACE, prompt="streetwear lookbook, urban backdrop"),
            INSTAMODEL,
            {
                "input_face": "https://files.example/face.webp",
                "prompt": "streetwear lookbook, urban backdrop",
            },
        ),
        (
            Operation.image_try_on,
            TryOn(person=PERSON, garment=JACKET, gender="female", category="upper_body"),
            TRYON,
            {
                "person_image": "https://files.example/person.webp",
                "clothing_image": "https://files.example/jacket.webp",
                "gender": "woman",
                "clothing_type": "upper-body garment",
            },
        ),
        (
            Operation.audio_clone_voice,
            CloneVoice(text="Hello from my cloned voice.", reference_audio=SAMPLE),
            VOICE,
            {
                "text": "Hello from my cloned voice.",
                "reference_voice_url": "https://files.example/sample.wav",
            },
        ),
    ],
)  # fmt: skip
async def test_each_binding_sends_the_documented_body(
    upstream: respx.MockRouter,
    adapter: ImagePipelineAdapter,
    operation: Operation,
    params: Params,
    endpoint: str,
    body: dict[str, Any],
) -> None:
    route = upstream.post(endpoint).mock(return_value=_queued(endpoint))
    result = await adapter.submit(_call(operation, params))

    assert result == Submitted(JOB_ID, poll_after_s=2.5)
    request = route.calls.last.request
    assert request.headers["x-api-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert _sent(route) == body
    assert adapter.bindings[operation].refuses(params) is None


async def test_every_documented_image_option_is_mapped(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    lock = upstream.post(LOCK).mock(return_value=_queued(LOCK))
    params = LockIdentity(
        face=FACE,
        prompt="p",
        negative_prompt="blur",
        width=768,
        height=2048,
        steps=30,
        guidance_scale=7.5,
        seed=42,
        palette=["#ff0000", "#0af"],
        output_format="png",
        profile_id="prof_1",
    )
    await adapter.submit(_call(Operation.image_lock_identity, params, "https://gw.test/cb/1"))
    assert _sent(lock) == {
        "input_image": "https://files.example/face.webp",
        "prompt": "p",
        "negative_prompt": "blur",
        "width": 768,
        "height": 2048,
        "num_inference_steps": 30,
        "guidance_scale": 7.5,
        "seed": 42,
        "palette": ["#ff0000", "#0af"],
        "output_format": "png",
        "profile_id": "prof_1",
        "callback_url": "https://gw.test/cb/1",
    }


async def test_replace_instamodel_and_try_on_options(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    replace = upstream.post(REPLACE).mock(return_value=_queued(REPLACE))
    instamodel = upstream.post(INSTAMODEL).mock(return_value=_queued(INSTAMODEL))
    tryon = upstream.post(TRYON).mock(return_value=_queued(TRYON))

    await adapter.submit(
        _call(
            Operation.image_replace_identity,
            ReplaceIdentity(
                image=SCENE,
                prompt="p",
                use_segmentation=False,
                tone_correction=0.3,
                seed=0,
                output_format="jpeg",
            ),
        )
    )
    assert _sent(replace) == {
        "input_image": "https://files.example/scene.webp",
        "prompt": "p",
        "use_segmentation": False,
        "tone_correction": 0.3,
        "seed": 0,
        "output_format": "jpeg",
    }
    await adapter.submit(
        _call(
            Operation.image_instamodel,
            Instamodel(face=FACE, prompt="p", width=512, height=640, negative_prompt="n", seed=9),
        )
    )
    assert _sent(instamodel) == {
        "input_face": "https://files.example/face.webp",
        "prompt": "p",
        "width": 512,
        "height": 640,
        "negative_prompt": "n",
        "seed": 9,
    }
    await adapter.submit(
        _call(
            Operation.image_try_on,
            TryOn(
                person=PERSON,
                garment=JACKET,
                gender="male",
                category="lower_body",
                width=256,
                height=1024,
                use_segmentation=True,
                tone_correction=1.0,
                profile_id="prof_2",
            ),
        )
    )
    assert _sent(tryon) == {
        "person_image": "https://files.example/person.webp",
        "clothing_image": "https://files.example/jacket.webp",
        "gender": "man",
        "clothing_type": "lower-body garment",
        "width": 256,
        "height": 1024,
        "use_segmentation": True,
        "tone_correction": 1.0,
        "profile_id": "prof_2",
    }


async def test_voice_clone_options(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    route = upstream.post(VOICE).mock(return_value=_queued(VOICE))
    params = CloneVoice(
        text="Shalom.",
        reference_audio=SAMPLE,
        language="he-IL",
        exaggeration=1.0,
        watermark=False,
        max_new_tokens=512,
    )
    await adapter.submit(_call(Operation.audio_clone_voice, params, "https://gw.test/cb/2"))
    assert _sent(route) == {
        "text": "Shalom.",
        "reference_voice_url": "https://files.example/sample.wav",
        "language_id": "he",
        "exaggeration": 1.0,
        "apply_watermark": False,
        "max_new_tokens": 512,
        "callback_url": "https://gw.test/cb/2",
    }


@pytest.mark.parametrize(
    ("extra", "sent"),
    [
        ({}, {}),
        ({"upscale": True}, {}),
        ({"upscale": False}, {"upscale": 1.0}),
        ({"upscale": True, "scale": 4.0}, {"upscale": 4.0}),
        ({"scale": 2.5}, {"upscale": 2.5}),
        ({"enhance_face": False}, {"restore_weight": 0.0}),
        ({"enhance_face": True}, {}),
        ({"enhance_face": True, "restore_weight": 0.9}, {"restore_weight": 0.9}),
        ({"palette": ["#123456"], "profile_id": "p", "output_format": "webp"},
         {"palette": ["#123456"], "profile_id": "p", "output_format": "webp"}),
    ],
)  # fmt: skip
async def test_face_swap_upscale_and_restoration(
    upstream: respx.MockRouter,
    adapter: ImagePipelineAdapter,
    extra: dict[str, Any],
    sent: dict[str, Any],
) -> None:
    route = upstream.post(FACESWAP).mock(return_value=_queued())
    params = SwapFace(source=FACE, target=SCENE, **extra)
    assert adapter.bindings[Operation.image_swap_face].refuses(params) is None
    await adapter.submit(_call(Operation.image_swap_face, params))
    body = _sent(route)
    assert body == {"target": SCENE.url, "source": FACE.url, **sent}


@pytest.mark.parametrize(
    ("operation", "params", "refused"),
    [
        (Operation.image_swap_face, {"upscale": False, "scale": 2.0}, "scale"),
        (Operation.image_swap_face, {"enhance_face": False, "restore_weight": 0.4},
         "restore_weight"),
        (Operation.image_lock_identity, {"width": 2049}, "width"),
        (Operation.image_instamodel, {"height": 4096}, "height"),
        (Operation.image_try_on, {"width": 128}, "width"),
        (Operation.image_try_on, {"height": 3000}, "height"),
        (Operation.image_replace_identity, {"face": {"url": "https://f.example/x.png"}}, "face"),
        (Operation.audio_clone_voice, {"exaggeration": 1.5}, "exaggeration"),
    ],
)  # fmt: skip
def test_bindings_refuse_what_the_upstream_cannot_honour(
    operation: Operation, params: dict[str, Any], refused: str
) -> None:
    base: dict[Operation, dict[str, Any]] = {
        Operation.image_swap_face: {"source": FACE, "target": SCENE},
        Operation.image_lock_identity: {"face": FACE, "prompt": "p"},
        Operation.image_instamodel: {"face": FACE, "prompt": "p"},
        Operation.image_replace_identity: {"image": SCENE, "prompt": "p"},
        Operation.image_try_on: {
            "person": PERSON, "garment": JACKET, "gender": "male", "category": "dress"
        },
        Operation.audio_clone_voice: {"text": "t", "reference_audio": SAMPLE},
    }  # fmt: skip
    fields = {k: v for k, v in (base[operation] | params).items() if v is not None}
    model = PARAMS[operation].model_validate(fields)
    assert ImagePipelineAdapter.bindings[operation].refuses(model) == refused


@pytest.mark.parametrize("missing", ["gender", "category"])
def test_try_on_requires_gender_and_category_rather_than_refusing_them(missing: str) -> None:
    binding = ImagePipelineAdapter.bindings[Operation.image_try_on]
    given: dict[str, Any] = {
        "person": PERSON, "garment": JACKET, "gender": "male", "category": "dress"
    }  # fmt: skip
    del given[missing]
    params = TryOn.model_validate(given)
    assert binding.refuses(params) is None
    assert binding.lacks(params) == missing
    assert not binding.serves(params)
    assert binding.required == {"gender", "category"}


def test_try_on_category_table_covers_every_canonical_category() -> None:
    binding = ImagePipelineAdapter.bindings[Operation.image_try_on]
    for category in ("upper_body", "lower_body", "dress", "full_body"):
        params = TryOn(person=PERSON, garment=JACKET, gender="female", category=category)
        assert binding.refuses(params) is None


async def test_a_submission_that_fails_at_once_is_read(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    upstream.post(FACESWAP).mock(
        return_value=_failed("INSUFFICIENT_CREDITS", "Top up credits in the dashboard.", False)
    )
    result = await adapter.submit(SWAP)
    assert isinstance(result, Failed)
    assert (result.code, result.provider_code) == (
        ErrorCode.upstream_failed,
        "INSUFFICIENT_CREDITS",
    )


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html><body>502 Bad Gateway</body></html>"),
        httpx.Response(200, json={"status": "queued"}),
        httpx.Response(200, json={"job_id": 42, "status": "queued"}),
        httpx.Response(200, json=["job_8f2a3c1b"]),
    ],
)
async def test_unreadable_submission_answers_raise(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter, response: httpx.Response
) -> None:
    upstream.post(FACESWAP).mock(return_value=response)
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(SWAP)


async def test_no_key_sends_no_header(upstream: respx.MockRouter) -> None:
    route = upstream.post(FACESWAP).mock(
        return_value=httpx.Response(401, json={"detail": "Not authenticated"})
    )
    async with httpx.AsyncClient() as client:
        adapter = ImagePipelineAdapter(client, AdapterConfig(base_url=BASE))
        result = await adapter.submit(SWAP)
    assert "x-api-key" not in route.calls.last.request.headers
    assert isinstance(result, Failed) and result.code is ErrorCode.provider_auth_failed


# polling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "progress", "fraction"),
    [("queued", 0, 0.0), ("pending", None, None), ("processing", 40, 0.4)],
)
async def test_running_statuses_are_progress(
    upstream: respx.MockRouter,
    adapter: ImagePipelineAdapter,
    status: str,
    progress: int | None,
    fraction: float | None,
) -> None:
    body: dict[str, Any] = {"job_id": JOB_ID, "status": status}
    if progress is not None:
        body["progress"] = progress
    route = upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(200, json=body)
    assert await adapter.poll(SWAP, JOB_ID) == Progress(fraction, poll_after_s=2.5)
    assert route.calls.last.request.headers["x-api-key"] == KEY


@pytest.mark.parametrize(
    ("operation", "params", "endpoint"),
    [
        (Operation.image_lock_identity, LockIdentity(face=FACE, prompt="p"), LOCK),
        (Operation.image_replace_identity, ReplaceIdentity(image=SCENE, prompt="p"), REPLACE),
        (Operation.image_instamodel, Instamodel(face=FACE, prompt="p"), INSTAMODEL),
        (
            Operation.image_try_on,
            TryOn(person=PERSON, garment=JACKET, gender="male", category="dress"),
            TRYON,
        ),
    ],
)
async def test_each_binding_polls_its_own_status_path(
    upstream: respx.MockRouter,
    adapter: ImagePipelineAdapter,
    operation: Operation,
    params: Params,
    endpoint: str,
) -> None:
    route = upstream.get(f"{endpoint}/status/{JOB_ID}").respond(
        200, json={"job_id": JOB_ID, "status": "processing", "progress": 50}
    )
    assert await adapter.poll(_call(operation, params), JOB_ID) == Progress(0.5, 2.5)
    assert route.called


async def test_completed_downloads_the_result_without_the_key(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(
        200,
        json={
            "job_id": JOB_ID,
            "status": "completed",
            "result_url": RESULT_URL,
            "processing_time_seconds": 22.1,
            "balance_remaining_usd": 187.52,
        },
    )
    download = upstream.get(RESULT_URL).respond(
        200, content=WEBP, headers={"content-type": "image/webp"}
    )
    result = await adapter.poll(SWAP, JOB_ID)

    assert result == Succeeded(files=[OutputFile(WEBP, "image/webp")])
    assert "x-api-key" not in download.calls.last.request.headers
    assert await adapter.balance() == ProviderBalance(187.52, "usd")


async def test_voice_clone_result_is_wav(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    upstream.get(f"{VOICE}/status/job_c50a91d7").respond(
        200,
        json={
            "job_id": "job_c50a91d7",
            "status": "completed",
            "result_url": WAV_URL,
            "processing_time_seconds": 6.3,
            "balance_remaining_usd": 187.52,
        },
    )
    upstream.get(WAV_URL).respond(
        200, content=WAV, headers={"content-type": "application/octet-stream"}
    )
    result = await adapter.poll(CLONE, "job_c50a91d7")
    assert result == Succeeded(files=[OutputFile(WAV, "audio/wav")])


@pytest.mark.parametrize(
    ("content", "headers", "hint", "expected"),
    [
        (WEBP, {"content-type": "binary/octet-stream"}, None, "image/webp"),
        (b"\x89PNG\r\n\x1a\n", {}, None, "image/png"),
        (b"\xff\xd8\xff\xe0", {}, "image/jpeg", "image/jpeg"),
        (b"bytes", {"content-type": "application/octet-stream"}, "image/png", "image/png"),
    ],
)
async def test_result_types_are_declared_hinted_or_sniffed(
    upstream: respx.MockRouter,
    adapter: ImagePipelineAdapter,
    content: bytes,
    headers: dict[str, str],
    hint: str | None,
    expected: str,
) -> None:
    body = {"job_id": JOB_ID, "status": "completed", "result_url": RESULT_URL}
    if hint:
        body["result_mime_type"] = hint
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(200, json=body)
    upstream.get(RESULT_URL).respond(200, content=content, headers=headers)
    result = await adapter.poll(SWAP, JOB_ID)
    assert isinstance(result, Succeeded) and result.files[0].content_type == expected


@pytest.mark.parametrize(
    "download",
    [
        httpx.Response(404, text="<Error><Code>AccessDenied</Code></Error>"),
        httpx.Response(200, text="<html>expired</html>", headers={"content-type": "text/html"}),
        httpx.Response(200, content=b""),
    ],
)
async def test_a_result_that_cannot_be_had_raises(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter, download: httpx.Response
) -> None:
    body = {"job_id": JOB_ID, "status": "completed", "result_url": RESULT_URL}
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(200, json=body)
    upstream.get(RESULT_URL).mock(return_value=download)
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(SWAP, JOB_ID)


async def test_an_image_where_audio_is_due_raises(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    body = {"job_id": JOB_ID, "status": "completed", "result_url": RESULT_URL}
    upstream.get(f"{VOICE}/status/{JOB_ID}").respond(200, json=body)
    upstream.get(RESULT_URL).respond(200, content=WEBP, headers={"content-type": "image/webp"})
    with pytest.raises(ProviderUnavailable, match="not audio"):
        await adapter.poll(CLONE, JOB_ID)


# failures: the document names no failure_reason_code, so each is kept, never read ----------


@pytest.mark.parametrize(
    ("code", "error", "retryable", "canonical", "canonical_retryable"),
    [
        ("RATE_LIMIT_EXCEEDED", "Too many requests.", True, ErrorCode.upstream_failed, True),
        ("CONCURRENT_JOBS_EXCEEDED", "Too many in-flight jobs.", True,
         ErrorCode.upstream_failed, True),
        ("INSUFFICIENT_CREDITS", "Top up credits.", False, ErrorCode.upstream_failed, True),
        ("CREDIT_CHARGE_FAILED", "Billing could not be completed.", False,
         ErrorCode.upstream_failed, True),
        ("INPUT_INVALID", "Prompt rejected by content policy.", False,
         ErrorCode.upstream_failed, True),
        ("INPUT_INVALID", "No face detected in the input image.", False,
         ErrorCode.upstream_failed, True),
        ("INPUT_INVALID", "Bad input.", False, ErrorCode.upstream_failed, True),
        ("MODEL_ERROR", "The model failed on this input.", True, ErrorCode.upstream_failed, True),
        ("MODEL_UNAVAILABLE", "Temporarily unavailable.", True, ErrorCode.upstream_failed, True),
        ("STORAGE_ERROR", "Result could not be stored.", True, ErrorCode.upstream_failed, True),
        ("TIMEOUT", "The job exceeded its time budget.", True, ErrorCode.upstream_failed, True),
        ("INTERNAL_ERROR", "Something went wrong.", True, ErrorCode.upstream_failed, True),
        ("CANCELLED", "The job was cancelled.", False, ErrorCode.upstream_failed, True),
        ("SOMETHING_NEW", "Unheard of.", True, ErrorCode.upstream_failed, True),
    ],
)  # fmt: skip
async def test_failed_jobs_map_every_failure_reason_code(
    upstream: respx.MockRouter,
    adapter: ImagePipelineAdapter,
    code: str,
    error: str,
    retryable: bool,
    canonical: ErrorCode,
    canonical_retryable: bool,
) -> None:
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").mock(return_value=_failed(code, error, retryable))
    result = await adapter.poll(SWAP, JOB_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable, result.provider_code) == (
        canonical,
        canonical_retryable,
        code,
    )
    assert error in result.message


async def test_a_failed_job_without_a_code_is_an_upstream_failure(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(
        200, json={"job_id": JOB_ID, "status": "failed"}
    )
    result = await adapter.poll(SWAP, JOB_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.upstream_failed, True)


async def test_a_cancelled_job_is_not_retried(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(
        200, json={"job_id": JOB_ID, "status": "cancelled"}
    )
    result = await adapter.poll(SWAP, JOB_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable, result.provider_code) == (
        ErrorCode.upstream_failed,
        False,
        "cancelled",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"job_id": JOB_ID},
        {"job_id": JOB_ID, "status": 3},
        {"job_id": JOB_ID, "status": "completed"},
        {"job_id": JOB_ID, "status": "completed", "result_url": "ftp://nope"},
        ["not", "an", "object"],
    ],
)
async def test_unreadable_status_bodies_raise(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter, body: object
) -> None:
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(200, json=body)
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(SWAP, JOB_ID)


@pytest.mark.parametrize("status", ["exploded", "TIMEOUT"])
async def test_an_unknown_status_is_logged_raw_and_read_as_running(
    upstream: respx.MockRouter,
    adapter: ImagePipelineAdapter,
    caplog: pytest.LogCaptureFixture,
    status: str,
) -> None:
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(
        200, json={"job_id": JOB_ID, "status": status}
    )
    assert isinstance(await adapter.poll(SWAP, JOB_ID), Progress)
    assert repr(status) in caplog.text


async def test_poll_escapes_the_job_id(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    route = upstream.get(url__regex=r".*/status/.*").respond(
        200, json={"job_id": JOB_ID, "status": "queued"}
    )
    await adapter.poll(SWAP, "../../v2")
    assert route.calls.last.request.url.raw_path == f"{FACESWAP}/status/..%2F..%2Fv2".encode()


# HTTP errors -----------------------------------------------------------------------------------

VALIDATION = {
    "detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "value_error.missing"}]
}


@pytest.mark.parametrize(
    ("response", "code", "retryable", "text", "provider_code"),
    [
        (httpx.Response(422, json=VALIDATION), ErrorCode.invalid_parameter, False,
         "prompt: field required", "http_422"),
        (httpx.Response(400, json={"detail": "Content-Type must be application/json"}),
         ErrorCode.invalid_parameter, False, "Content-Type", "http_400"),
        (httpx.Response(401, json={"detail": "Not authenticated"}),
         ErrorCode.provider_auth_failed, True, "Not authenticated", "http_401"),
        (httpx.Response(403, json={"detail": "Invalid API key"}),
         ErrorCode.provider_auth_failed, True, "Invalid API key", "http_403"),
        (httpx.Response(402, json={"detail": "Payment required"}),
         ErrorCode.upstream_failed, False, "Payment required", "http_402"),
        (httpx.Response(413, text="Request Entity Too Large"),
         ErrorCode.media_too_large, False, "Too Large", "http_413"),
        (httpx.Response(409, json={"detail": "Conflict"}),
         ErrorCode.upstream_failed, False, "Conflict", "http_409"),
        (httpx.Response(429, json={"detail": {
            "error": "Too many in-flight jobs for your plan.",
            "failure_reason_code": "CONCURRENT_JOBS_EXCEEDED", "retryable": True}}),
         ErrorCode.provider_rate_limited, True, "in-flight", "CONCURRENT_JOBS_EXCEEDED"),
        (httpx.Response(402, json={"detail": {
            "error": "Top up credits in the dashboard.",
            "failure_reason_code": "INSUFFICIENT_CREDITS", "retryable": False}}),
         ErrorCode.upstream_failed, False, "Top up", "INSUFFICIENT_CREDITS"),
    ],
)  # fmt: skip
async def test_http_errors_map_through_the_table(
    upstream: respx.MockRouter,
    adapter: ImagePipelineAdapter,
    response: httpx.Response,
    code: ErrorCode,
    retryable: bool,
    text: str,
    provider_code: str,
) -> None:
    upstream.post(FACESWAP).mock(return_value=response)
    result = await adapter.submit(SWAP)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable, result.provider_code) == (code, retryable, provider_code)
    assert text in result.message
    assert KEY not in result.message


async def test_rate_limit_reads_retry_after(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    body = {"detail": {"error": "Too many requests", "failure_reason_code": "RATE_LIMIT_EXCEEDED"}}
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(
        429, json=body, headers={"Retry-After": "7"}
    )
    result = await adapter.poll(SWAP, JOB_ID)
    assert result == PollTrouble("imagepipeline HTTP 429: Too many requests", retry_after_s=7.0)


async def test_an_unknown_job_is_an_upstream_failure(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(404, json={"detail": "Job not found"})
    result = await adapter.poll(SWAP, JOB_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.upstream_failed, True)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_raise_provider_unavailable(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter, status: int
) -> None:
    upstream.post(FACESWAP).respond(status, json={"detail": "Internal Server Error"})
    with pytest.raises(ProviderUnavailable, match=str(status)):
        await adapter.submit(SWAP)


async def test_timeouts_raise_upstream_timeout(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout):
        await adapter.poll(SWAP, JOB_ID)


# balance ---------------------------------------------------------------------------------------


async def test_balance_is_unknown_until_an_answer_carries_it(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    assert await adapter.balance() is None
    upstream.get(f"{FACESWAP}/status/{JOB_ID}").respond(
        200, json={"job_id": JOB_ID, "status": "processing", "balance_remaining_usd": 12}
    )
    await adapter.poll(SWAP, JOB_ID)
    assert await adapter.balance() == ProviderBalance(12.0, "usd")


async def test_balance_is_kept_per_credential_and_updated(
    upstream: respx.MockRouter, adapter: ImagePipelineAdapter
) -> None:
    route = upstream.get(f"{FACESWAP}/status/{JOB_ID}")
    route.side_effect = [
        _failed("MODEL_ERROR", "boom", True),
        httpx.Response(
            200, json={"job_id": JOB_ID, "status": "queued", "balance_remaining_usd": 187.52}
        ),
        httpx.Response(
            200, json={"job_id": JOB_ID, "status": "queued", "balance_remaining_usd": 3.5}
        ),
        httpx.Response(
            200, json={"job_id": JOB_ID, "status": "queued", "balance_remaining_usd": 187.49}
        ),
    ]
    second = _call(Operation.image_swap_face, SWAP.params, credential=1)
    await adapter.poll(SWAP, JOB_ID)
    assert await adapter.balance() is None
    await adapter.poll(SWAP, JOB_ID)
    await adapter.poll(second, JOB_ID)
    assert await adapter.balance() == ProviderBalance(187.52, "usd")
    assert route.calls[2].request.headers["x-api-key"] == OTHER_KEY
    await adapter.poll(SWAP, JOB_ID)
    assert await adapter.balance() == ProviderBalance(187.49, "usd")
