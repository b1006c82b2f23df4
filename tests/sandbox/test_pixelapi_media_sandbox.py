"""The PixelAPI emulator's newer endpoints over ASGI (replace background, restore face, remove
object, audio, video, virtual try-on, usage): documented bodies and validation, lifecycles, real
PNG / WAV / MP4 outputs, faults, counters, and the adapter running every binding against it."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import time
import wave
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypedDict, cast

import httpx
import pytest
import respx
from PIL import Image

from app.domain.errors import ErrorCode
from app.domain.media import ImageInput
from app.domain.operations import (
    GenerateAudio,
    GenerateVideo,
    Operation,
    Params,
    RemoveObject,
    ReplaceBackground,
    RestoreFace,
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
from app.providers.pixelapi import PixelApiAdapter
from app.sandbox import images
from app.sandbox import pixelapi as emulator
from app.sandbox.credentials import PIXELAPI_API_KEY
from app.sandbox.timing import SandboxTiming
from tests.sandbox.conftest import BASE
from tests.utils.clock import Clock
from tests.utils.media_source import DictMedia
from tests.utils.sandbox import CONTROL, sandbox_app

ROOT = "/_sandbox/pixelapi"
UA = {"User-Agent": "MyApp/1.0"}
AUTH = {"Authorization": f"Bearer {PIXELAPI_API_KEY}", **UA}
PHOTO = images.render(300, 200, "jpeg", seed=3)
MASK = images.render(300, 200, "png", seed=4)
PERSON = images.render(300, 400, "jpeg", seed=5)
GARMENT = images.render(200, 240, "png", seed=6)
JOB_S = 0.2


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def sandbox_timing() -> SandboxTiming:
    return SandboxTiming(job_s=JOB_S)


@pytest.fixture
def files() -> Iterator[respx.MockRouter]:
    """Where ``image_url`` / ``mask_url`` inputs live; the emulator downloads them."""
    with respx.mock(base_url="https://files.test", assert_all_called=False) as router:
        router.get("/photo.jpg").respond(200, content=PHOTO)
        router.get("/mask.png").respond(200, content=MASK)
        yield router


class Form(TypedDict, total=False):
    """The form fields sent beside the files."""

    prompt: str


async def _upload(
    client: httpx.AsyncClient,
    operation: str,
    content: bytes = PHOTO,
    mask: bytes | None = None,
    **fields: str,
) -> httpx.Response:
    files = {"image": ("photo.jpg", content, "image/jpeg")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    return await client.post(f"{ROOT}/v1/image/{operation}", headers=AUTH, files=files, data=fields)


async def _audio(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post(f"{ROOT}/v1/audio/generate", headers=AUTH, json=body)


async def _video(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post(f"{ROOT}/v1/video/generate", headers=AUTH, json=body)


async def _try_on(client: httpx.AsyncClient, **overrides: Any) -> httpx.Response:
    body = {"person_image": _b64(PERSON), "garment_image": _b64(GARMENT), "category": "upperbody"}
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}
    return await client.post(f"{ROOT}/v1/virtual-tryon", headers=AUTH, json=body)


async def _until_done(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await client.get(f"{ROOT}{path}", headers=AUTH)).json()
        if body["status"] not in ("queued", "processing"):
            return body
        await asyncio.sleep(0.03)
    raise AssertionError("the job never finished")


async def _download(client: httpx.AsyncClient, url: str, content_type: str) -> bytes:
    response = await client.get(url, headers=UA)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    return response.content


def _png(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    assert image.format == "PNG"
    return image


def _wav_seconds(content: bytes) -> float:
    with wave.open(io.BytesIO(content), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def _boxes(data: bytes) -> dict[bytes, bytes]:
    found: dict[bytes, bytes]
    found, offset = {}, 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        found.setdefault(kind, data[offset + 8 : offset + size])
        offset += size
    return found


def _mp4(content: bytes) -> tuple[float, int, int]:
    """Duration (``mvhd``), width and height (``tkhd``) of an MP4; its first frame decodes."""
    top = _boxes(content)
    assert top[b"ftyp"].startswith(b"isom")
    moov = _boxes(top[b"moov"])
    timescale, duration = struct.unpack(">II", moov[b"mvhd"][12:20])
    tkhd = _boxes(moov[b"trak"])[b"tkhd"]
    width, height = (value >> 16 for value in struct.unpack(">II", tkhd[-8:]))
    frame = Image.open(io.BytesIO(top[b"mdat"]))
    assert (frame.format, frame.size) == ("JPEG", (width, height))
    return duration / timescale, width, height


async def _arm(client: httpx.AsyncClient, fault: str, count: int = 1) -> None:
    body = {"provider": "pixelapi", "fault": fault, "count": count}
    assert (await client.post("/_sandbox/faults", json=body, headers=CONTROL)).status_code == 204


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return stats.get("pixelapi", {"requests": 0, "submissions": 0, "by_endpoint": {}})


async def _balance(client: httpx.AsyncClient) -> float:
    body = (await client.get(f"{ROOT}/v1/account/balance", headers=AUTH)).json()
    return float(body["credits_remaining"])


# image endpoints ---------------------------------------------------------------------------------


async def test_replace_background_lifecycle_and_output(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    submitted = await _upload(sandbox, "replace-background", prompt="marble countertop")
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body.keys() == {"generation_id", "status", "operation", "credits_used"}
    assert body["generation_id"].startswith("bg-rp-")
    assert (body["status"], body["operation"], body["credits_used"]) == (
        "queued",
        "replace-background",
        8.0,
    )
    path = f"/v1/image/{body['generation_id']}"
    assert (await sandbox.get(f"{ROOT}{path}", headers=AUTH)).json()["status"] == "queued"
    clock.now += JOB_S * 0.5
    assert (await sandbox.get(f"{ROOT}{path}", headers=AUTH)).json()["status"] == "processing"
    clock.now += JOB_S
    done = (await sandbox.get(f"{ROOT}{path}", headers=AUTH)).json()
    assert (done["status"], done["operation"], done["credits_used"]) == (
        "completed",
        "replace-background",
        8.0,
    )
    assert done["output_url"].startswith(f"{BASE}{ROOT}/outputs/images/")
    image = _png(await _download(sandbox, done["output_url"], "image/png"))
    assert (image.size, image.mode) == ((300, 200), "RGB")


async def test_replace_background_takes_json_with_image_url(
    sandbox: httpx.AsyncClient, files: respx.MockRouter
) -> None:
    submitted = await sandbox.post(
        f"{ROOT}/v1/image/replace-background",
        headers=AUTH,
        json={"image_url": "https://files.test/photo.jpg", "prompt": "clouds"},
    )
    assert submitted.status_code == 200, submitted.text
    done = await _until_done(sandbox, f"/v1/image/{submitted.json()['generation_id']}")
    assert _png(await _download(sandbox, done["output_url"], "image/png")).size == (300, 200)


@pytest.mark.parametrize(
    ("fields", "loc"),
    [({}, ["body", "prompt"]), ({"prompt": "  "}, ["body", "prompt"])],
)
async def test_replace_background_needs_a_prompt(
    sandbox: httpx.AsyncClient, fields: Form, loc: list[str]
) -> None:
    response = await _upload(sandbox, "replace-background", **fields)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    assert (await _stats(sandbox))["submissions"] == 0


async def test_restore_face_by_upload_and_by_url(
    sandbox: httpx.AsyncClient, files: respx.MockRouter
) -> None:
    uploaded = await _upload(sandbox, "restore-face")
    by_url = await sandbox.post(
        f"{ROOT}/v1/image/restore-face",
        headers=AUTH,
        json={"image_url": "https://files.test/photo.jpg"},
    )
    for submitted in (uploaded, by_url):
        assert submitted.status_code == 200, submitted.text
        body = submitted.json()
        assert body["generation_id"].startswith("face-")
        assert (body["operation"], body["credits_used"]) == ("restore-face", 5.0)
        done = await _until_done(sandbox, f"/v1/image/{body['generation_id']}")
        assert _png(await _download(sandbox, done["output_url"], "image/png")).size == (300, 200)


@pytest.mark.parametrize(
    ("mask", "fields"),
    [(MASK, {}), (None, {"prompt": "the watermark"}), (MASK, {"prompt": "the shadow"})],
)
async def test_remove_object_with_a_mask_or_a_prompt(
    sandbox: httpx.AsyncClient, mask: bytes | None, fields: Form
) -> None:
    submitted = await _upload(sandbox, "remove-object", mask=mask, **fields)
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body["generation_id"].startswith("obj-rm-")
    assert (body["operation"], body["credits_used"]) == ("remove-object", 8.0)
    done = await _until_done(sandbox, f"/v1/image/{body['generation_id']}")
    assert _png(await _download(sandbox, done["output_url"], "image/png")).size == (300, 200)


async def test_remove_object_takes_the_sdks_json_with_mask_url(
    sandbox: httpx.AsyncClient, files: respx.MockRouter
) -> None:
    submitted = await sandbox.post(
        f"{ROOT}/v1/image/remove-object",
        headers=AUTH,
        json={
            "image_url": "https://files.test/photo.jpg",
            "mask_url": "https://files.test/mask.png",
        },
    )
    assert submitted.status_code == 200, submitted.text


@pytest.mark.parametrize(
    ("mask", "fields", "status", "text"),
    [
        (None, {}, 422, "Provide either mask or prompt"),
        (images.render(100, 100, "png"), {}, 400, "same dimensions"),
        (b"not a picture", {}, 400, "Invalid mask file"),
    ],
)
async def test_remove_object_refusals(
    sandbox: httpx.AsyncClient,
    mask: bytes | None,
    fields: Form,
    status: int,
    text: str,
) -> None:
    response = await _upload(sandbox, "remove-object", mask=mask, **fields)
    assert response.status_code == status
    assert text in str(response.json()["detail"])
    assert (await _stats(sandbox))["submissions"] == 0


# audio --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "duration", "credits"),
    [
        ({}, 15, 5.0),
        ({"duration": 5}, 5, 5.0),
        ({"duration": 16, "model": "musicgen-small"}, 16, 10.0),
        ({"duration": 30}, 30, 10.0),
    ],
)
async def test_audio_is_a_wav_of_the_asked_length(
    sandbox: httpx.AsyncClient, body: dict[str, Any], duration: int, credits: float
) -> None:
    submitted = await _audio(sandbox, prompt="calm lofi hip hop beat", **body)
    assert submitted.status_code == 200, submitted.text
    answer = submitted.json()
    assert answer == {
        "generation_id": answer["generation_id"],
        "status": "queued",
        "model": "musicgen-small",
        "duration": duration,
        "credits_used": credits,
        "estimated_seconds": 2 * duration,
    }
    done = await _until_done(sandbox, f"/v1/image/{answer['generation_id']}")
    assert (done["model"], done["credits_used"]) == ("musicgen-small", credits)
    assert done["output_url"].startswith(f"{BASE}{ROOT}/outputs/audio/")
    assert done["output_url"].endswith(".wav")
    wav = await _download(sandbox, done["output_url"], "audio/wav")
    assert _wav_seconds(wav) == duration
    assert await _balance(sandbox) == emulator.PLAN_CREDITS - credits


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "ab"}, "prompt"),
        ({"prompt": "x" * 501}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "drums", "duration": 4}, "duration"),
        ({"prompt": "drums", "duration": 31}, "duration"),
        ({"prompt": "drums", "duration": 10.5}, "duration"),
        ({"prompt": "drums", "model": "musicgen-large"}, "model"),
    ],
)
async def test_audio_validation_is_422(
    sandbox: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await _audio(sandbox, **body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert (await _stats(sandbox))["submissions"] == 0


async def test_audio_credits_run_out_at_its_own_price(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulator, "PLAN_CREDITS", 7.0)
    app = sandbox_app(SandboxTiming(job_s=JOB_S))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        refused = await _audio(client, prompt="epic trailer", duration=20)
        accepted = await _audio(client, prompt="epic trailer", duration=10)
    assert refused.status_code == 402
    assert refused.json()["detail"].startswith("Insufficient credits. Required: 10, available: 7.")
    assert accepted.status_code == 200


# video --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "size", "seconds", "credits", "estimate"),
    [
        ({}, (832, 480), 3.0, 50.0, 60),
        ({"duration": 1.5, "resolution": "480p", "seed": 4}, (832, 480), 1.5, 50.0, 60),
        (
            {"duration": 2, "resolution": "720p", "negative_prompt": "n"},
            (1280, 720),
            2.0,
            100.0,
            120,
        ),
    ],
)
async def test_video_is_an_mp4_at_the_documented_size(
    sandbox: httpx.AsyncClient,
    body: dict[str, Any],
    size: tuple[int, int],
    seconds: float,
    credits: float,
    estimate: int,
) -> None:
    submitted = await _video(sandbox, prompt="a drone shot over mountains", **body)
    assert submitted.status_code == 200, submitted.text
    answer = submitted.json()
    assert answer == {
        "generation_id": answer["generation_id"],
        "status": "queued",
        "model": "wan2.1",
        "credits_used": credits,
        "estimated_seconds": estimate,
    }
    done = await _until_done(sandbox, f"/v1/video/{answer['generation_id']}")
    assert done.keys() == {"generation_id", "status", "output_url", "processing_ms"}
    assert done["status"] == "completed"
    assert isinstance(done["processing_ms"], int) and done["processing_ms"] >= 0
    assert done["output_url"].startswith(f"{BASE}{ROOT}/outputs/videos/")
    mp4 = await _download(sandbox, done["output_url"], "video/mp4")
    assert _mp4(mp4) == (seconds, *size)


async def test_video_status_shape_while_running(sandbox: httpx.AsyncClient, clock: Clock) -> None:
    generation_id = (await _video(sandbox, prompt="waves")).json()["generation_id"]
    running = (await sandbox.get(f"{ROOT}/v1/video/{generation_id}", headers=AUTH)).json()
    assert running == {
        "generation_id": generation_id,
        "status": "queued",
        "output_url": None,
        "processing_ms": None,
    }
    image_view = (await sandbox.get(f"{ROOT}/v1/image/{generation_id}", headers=AUTH)).json()
    assert (image_view["id"], image_view["model"]) == (generation_id, "wan2.1")


async def test_the_video_path_knows_only_videos(sandbox: httpx.AsyncClient) -> None:
    generation_id = (await _upload(sandbox, "restore-face")).json()["generation_id"]
    response = await sandbox.get(f"{ROOT}/v1/video/{generation_id}", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"detail": "Generation not found"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"prompt": "p", "duration": 0.5}, "duration"),
        ({"prompt": "p", "duration": 11}, "duration"),
        ({"prompt": "p", "resolution": "1080p"}, "resolution"),
        ({"prompt": "p", "negative_prompt": "x" * 2001}, "negative_prompt"),
        ({"prompt": "p", "seed": "abc"}, "seed"),
    ],
)
async def test_video_validation_is_422(
    sandbox: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await _video(sandbox, **body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


# virtual try-on -----------------------------------------------------------------------------------


async def test_try_on_lifecycle_and_inline_result(sandbox: httpx.AsyncClient, clock: Clock) -> None:
    submitted = await _try_on(sandbox, category="dress")
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body == {"job_id": body["job_id"], "status": "queued", "credits_used": 25}
    assert len(body["job_id"]) == 32 and int(body["job_id"], 16) >= 0
    path = f"{ROOT}/v1/virtual-tryon/jobs/{body['job_id']}"
    queued = (await sandbox.get(path, headers=AUTH)).json()
    assert queued == {"status": "queued", "result_image_b64": None, "inference_time_ms": None}
    clock.now += JOB_S * 0.5
    assert (await sandbox.get(path, headers=AUTH)).json()["status"] == "processing"
    clock.now += JOB_S
    done = (await sandbox.get(path, headers=AUTH)).json()
    assert done.keys() == {"status", "result_image_b64", "inference_time_ms"}
    assert done["status"] == "completed" and isinstance(done["inference_time_ms"], int)
    assert _png(base64.b64decode(done["result_image_b64"], validate=True)).size == (300, 400)
    assert await _balance(sandbox) == emulator.PLAN_CREDITS - 25


async def test_try_on_jobs_live_on_their_own_path(sandbox: httpx.AsyncClient) -> None:
    job_id = (await _try_on(sandbox)).json()["job_id"]
    assert (await sandbox.get(f"{ROOT}/v1/image/{job_id}", headers=AUTH)).status_code == 404
    unknown = await sandbox.get(f"{ROOT}/v1/virtual-tryon/jobs/ffff", headers=AUTH)
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Job not found"})


def _structured(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    detail: dict[str, Any] = response.json()["detail"]
    assert detail["error"] == error
    assert detail["message"] and detail["guidance"]
    return detail


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"category": "shoes"}, 422, "invalid_category"),
        ({"category": "upper_body"}, 422, "invalid_category"),
        ({"category": None}, 422, "invalid_category"),
        ({"person_image": "***not base64***"}, 400, "invalid_image"),
        ({"person_image": f"data:image/jpeg;base64,{_b64(PERSON)}"}, 400, "invalid_image"),
        ({"garment_image": _b64(b"GIF89a nope")}, 400, "invalid_image"),
        ({"garment_image": None}, 400, "invalid_image"),
        ({"person_image": ""}, 400, "invalid_image"),
    ],
)
async def test_try_on_refusals_follow_the_documented_structure(
    sandbox: httpx.AsyncClient, overrides: dict[str, Any], status: int, error: str
) -> None:
    _structured(await _try_on(sandbox, **overrides), status, error)
    assert (await _stats(sandbox))["submissions"] == 0


@pytest.mark.parametrize(
    ("person", "error", "received"),
    [
        (images.render(80, 120, "png"), "image_too_small", "80x120px"),
        (images.render(60, 40, "png"), "image_too_small", "60x40px"),
        (images.render(400, 300, "jpeg"), "wrong_aspect_ratio", "400x300px"),
    ],
)
async def test_try_on_person_picture_checks(
    sandbox: httpx.AsyncClient, person: bytes, error: str, received: str
) -> None:
    detail = _structured(await _try_on(sandbox, person_image=_b64(person)), 422, error)
    assert detail["received_size"] == received


async def test_try_on_over_10_mb_is_413(sandbox: httpx.AsyncClient) -> None:
    response = await _try_on(sandbox, garment_image=_b64(GARMENT + b"\0" * (10 * 1024 * 1024)))
    assert response.status_code == 413


# faults, counters, usage --------------------------------------------------------------------------

SUBMITTERS: dict[str, Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]] = {
    "replace-background": lambda c: _upload(c, "replace-background", prompt="clouds"),
    "restore-face": lambda c: _upload(c, "restore-face"),
    "remove-object": lambda c: _upload(c, "remove-object", prompt="the cat"),
    "audio": lambda c: _audio(c, prompt="lofi beat"),
    "video": lambda c: _video(c, prompt="waves"),
    "try-on": _try_on,
}
STATUS_PATHS = {
    "audio": "/v1/image/{}",
    "video": "/v1/video/{}",
    "try-on": "/v1/virtual-tryon/jobs/{}",
}


def _status_path(kind: str, answer: dict[str, Any]) -> str:
    job_id = answer.get("generation_id") or answer["job_id"]
    return STATUS_PATHS.get(kind, "/v1/image/{}").format(job_id)


@pytest.mark.parametrize("kind", SUBMITTERS)
@pytest.mark.parametrize(
    ("fault", "status", "text"),
    [
        ("http_500", 500, "Internal server error"),
        ("rate_limit", 429, "Rate limit exceeded"),
        ("no_credits", 402, "Insufficient credits."),
    ],
)
async def test_faults_on_every_new_submission(
    sandbox: httpx.AsyncClient, kind: str, fault: str, status: int, text: str
) -> None:
    await _arm(sandbox, fault)
    response = await SUBMITTERS[kind](sandbox)
    if kind == "try-on" and fault == "http_500":
        _structured(response, 503, "gpu_out_of_memory")
    else:
        assert response.status_code == status
        assert str(response.json()["detail"]).startswith(text)
    assert int(response.headers["X-RateLimit-Remaining"]) >= 0
    assert (await _stats(sandbox))["submissions"] == 0


@pytest.mark.parametrize("kind", SUBMITTERS)
async def test_garbage_and_timeout_on_every_new_submission(
    sandbox: httpx.AsyncClient, kind: str
) -> None:
    await _arm(sandbox, "garbage")
    garbage = await SUBMITTERS[kind](sandbox)
    assert garbage.status_code == 200
    assert garbage.headers["content-type"].startswith("text/html")
    await _arm(sandbox, "timeout")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(SUBMITTERS[kind](sandbox), timeout=0.2)


@pytest.mark.parametrize("kind", SUBMITTERS)
async def test_blocked_ends_every_kind_of_job_blocked_and_refunds_it(
    sandbox: httpx.AsyncClient, kind: str
) -> None:
    await _arm(sandbox, "blocked")
    answer = (await SUBMITTERS[kind](sandbox)).json()
    done = await _until_done(sandbox, _status_path(kind, answer))
    assert done["status"] == "blocked"
    error = cast(str, done.get("error") or done.get("error_message"))
    assert error.startswith("Content policy")
    assert await _balance(sandbox) == emulator.PLAN_CREDITS
    assert (await _stats(sandbox))["submissions"] == 1


@pytest.mark.parametrize("kind", [k for k in SUBMITTERS if k != "try-on"])
async def test_no_face_fails_the_job(sandbox: httpx.AsyncClient, kind: str) -> None:
    await _arm(sandbox, "no_face")
    answer = (await SUBMITTERS[kind](sandbox)).json()
    done = await _until_done(sandbox, _status_path(kind, answer))
    assert done["status"] == "failed"
    assert cast(str, done.get("error") or done.get("error_message")).startswith("No face")


async def test_no_face_on_a_try_on_is_body_segmentation_failed(
    sandbox: httpx.AsyncClient,
) -> None:
    await _arm(sandbox, "no_face")
    _structured(await _try_on(sandbox), 422, "body_segmentation_failed")
    assert (await _stats(sandbox))["submissions"] == 0


@pytest.mark.parametrize("kind", ["video", "try-on"])
async def test_faults_on_the_new_status_paths(sandbox: httpx.AsyncClient, kind: str) -> None:
    path = f"{ROOT}{_status_path(kind, (await SUBMITTERS[kind](sandbox)).json())}"
    await _arm(sandbox, "http_500")
    assert (await sandbox.get(path, headers=AUTH)).status_code == 500
    await _arm(sandbox, "rate_limit")
    assert (await sandbox.get(path, headers=AUTH)).status_code == 429
    await _arm(sandbox, "garbage")
    assert (await sandbox.get(path, headers=AUTH)).headers["content-type"].startswith("text/html")
    await _arm(sandbox, "no_face")
    failed = (await sandbox.get(path, headers=AUTH)).json()
    assert (failed["status"], failed["error_message"]) == (
        "failed",
        "No face detected in the image.",
    )


async def test_new_endpoints_need_the_key_and_a_proper_agent(sandbox: httpx.AsyncClient) -> None:
    for path in ("/v1/audio/generate", "/v1/video/generate", "/v1/virtual-tryon"):
        no_key = await sandbox.post(f"{ROOT}{path}", headers=UA, json={})
        assert no_key.status_code == 401
        stock = await sandbox.post(
            f"{ROOT}{path}", headers={**AUTH, "User-Agent": "python-requests/2.32"}, json={}
        )
        assert (stock.status_code, stock.text) == (403, "error code: 1010")


async def test_new_submissions_are_metered(
    sandbox: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "REQUESTS_PER_MINUTE", 2)
    answers = [await _video(sandbox, prompt="waves"), await _try_on(sandbox), await _audio(sandbox)]
    assert [a.status_code for a in answers] == [200, 200, 429]


async def test_stats_name_the_new_endpoints(sandbox: httpx.AsyncClient) -> None:
    for kind, submit in SUBMITTERS.items():
        answer = (await submit(sandbox)).json()
        await sandbox.get(f"{ROOT}{_status_path(kind, answer)}", headers=AUTH)
    stats = await _stats(sandbox)
    assert stats["submissions"] == 6
    assert stats["by_endpoint"] == {
        "/v1/image/replace-background": 1,
        "/v1/image/restore-face": 1,
        "/v1/image/remove-object": 1,
        "/v1/audio/generate": 1,
        "/v1/video/generate": 1,
        "/v1/virtual-tryon": 1,
        "/v1/image/{generation_id}": 4,
        "/v1/video/{generation_id}": 1,
        "/v1/virtual-tryon/jobs/{job_id}": 1,
    }


async def test_usage_lists_the_newest_jobs(sandbox: httpx.AsyncClient) -> None:
    first = (await _upload(sandbox, "restore-face")).json()["generation_id"]
    second = (await _audio(sandbox, prompt="lofi beat")).json()["generation_id"]
    third = (await _try_on(sandbox)).json()["job_id"]
    listed = (await sandbox.get(f"{ROOT}/v1/account/usage?limit=2", headers=AUTH)).json()
    assert listed["count"] == 2
    assert [e["generation_id"] for e in listed["usage"]] == [third, second]
    assert listed["usage"][1]["operation"] == "generate-audio"
    everything = (await sandbox.get(f"{ROOT}/v1/account/usage", headers=AUTH)).json()
    assert [e["generation_id"] for e in everything["usage"]] == [third, second, first]
    refused = await sandbox.get(f"{ROOT}/v1/account/usage?limit=0", headers=AUTH)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["query", "limit"]


# the adapter against the emulator ----------------------------------------------------------------

MEDIA = DictMedia(
    {
        "file_photo": Media(PHOTO, "image/jpeg"),
        "file_mask": Media(MASK, "image/png"),
        "file_person": Media(PERSON, "image/jpeg"),
        "file_garment": Media(GARMENT, "image/png"),
        "file_wide": Media(images.render(400, 300, "jpeg"), "image/jpeg"),
    }
)
PHOTO_FILE = ImageInput(file_id="file_photo")
MASK_FILE = ImageInput(file_id="file_mask")
PERSON_FILE = ImageInput(file_id="file_person")
GARMENT_FILE = ImageInput(file_id="file_garment")
REPLACE = ReplaceBackground(image=PHOTO_FILE, prompt="product floating in clouds")


def _adapter(client: httpx.AsyncClient) -> PixelApiAdapter:
    config = AdapterConfig(
        base_url=f"{BASE}{ROOT}",
        credentials=(Credential(api_key=PIXELAPI_API_KEY),),
        timeout_s=5,
        poll_interval_s=0.02,
    )
    return PixelApiAdapter(client, config)


async def _run(
    adapter: PixelApiAdapter, operation: Operation, params: Params
) -> Succeeded | Failed | PollTrouble:
    call = Call("job_1", operation, params, MEDIA)
    submitted = await adapter.submit(call)
    if isinstance(submitted, Failed):
        return submitted
    assert isinstance(submitted, Submitted), submitted
    for _ in range(200):
        result = await adapter.poll(call, submitted.provider_job_id)
        if not isinstance(result, Progress):
            return result
        await asyncio.sleep(result.poll_after_s)
    raise AssertionError("the adapter never saw the job finish")


@pytest.mark.parametrize(
    ("operation", "params", "size"),
    [
        (Operation.image_replace_background, REPLACE, (300, 200)),
        (Operation.image_restore_face, RestoreFace(image=PHOTO_FILE), (300, 200)),
        (Operation.image_remove_object, RemoveObject(image=PHOTO_FILE, mask=MASK_FILE), (300, 200)),
        (Operation.image_remove_object, RemoveObject(image=PHOTO_FILE, prompt="cat"), (300, 200)),
        (Operation.image_try_on, TryOn(person=PERSON_FILE, garment=GARMENT_FILE), (300, 400)),
    ],
)  # fmt: skip
async def test_the_adapter_runs_the_image_bindings(
    sandbox: httpx.AsyncClient, operation: Operation, params: Params, size: tuple[int, int]
) -> None:
    result = await _run(_adapter(sandbox), operation, params)
    assert isinstance(result, Succeeded), result
    [output] = result.files
    assert output.content_type == "image/png"
    assert _png(output.content).size == size
    assert (await _stats(sandbox))["submissions"] == 1


async def test_the_adapter_runs_audio(sandbox: httpx.AsyncClient) -> None:
    params = GenerateAudio(prompt="calm lofi hip hop beat", duration_s=12, model="musicgen-small")
    result = await _run(_adapter(sandbox), Operation.audio_generate, params)
    assert isinstance(result, Succeeded), result
    [output] = result.files
    assert output.content_type == "audio/wav"
    assert _wav_seconds(output.content) == 12


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (GenerateVideo(prompt="a drone shot"), (3.0, 832, 480)),
        (GenerateVideo(prompt="a", duration_s=2, resolution="720p", seed=1), (2.0, 1280, 720)),
    ],
)  # fmt: skip
async def test_the_adapter_runs_video(
    sandbox: httpx.AsyncClient, params: GenerateVideo, expected: tuple[float, int, int]
) -> None:
    result = await _run(_adapter(sandbox), Operation.video_generate, params)
    assert isinstance(result, Succeeded), result
    [output] = result.files
    assert output.content_type == "video/mp4"
    assert _mp4(output.content) == expected
    assert (await _stats(sandbox))["by_endpoint"]["/v1/video/{generation_id}"] >= 1


async def test_the_adapter_reads_try_on_refusals(sandbox: httpx.AsyncClient) -> None:
    adapter = _adapter(sandbox)
    person, garment = ImageInput(file_id="file_person"), ImageInput(file_id="file_garment")
    wide = TryOn(person=ImageInput(file_id="file_wide"), garment=garment)
    landscape = await _run(adapter, Operation.image_try_on, wide)
    assert isinstance(landscape, Failed)
    assert (landscape.code, landscape.provider_code) == (
        ErrorCode.invalid_media,
        "wrong_aspect_ratio",
    )

    await _arm(sandbox, "no_face")
    segmentation = await _run(
        adapter, Operation.image_try_on, TryOn(person=person, garment=garment)
    )
    assert isinstance(segmentation, Failed)
    assert segmentation.provider_code == "body_segmentation_failed"

    await _arm(sandbox, "http_500")
    busy = await _run(adapter, Operation.image_try_on, TryOn(person=person, garment=garment))
    assert isinstance(busy, Failed)
    assert (busy.code, busy.retryable, busy.provider_code) == (
        ErrorCode.provider_unavailable,
        True,
        "gpu_out_of_memory",
    )


async def test_the_adapter_reads_blocked_video_and_audio(sandbox: httpx.AsyncClient) -> None:
    adapter = _adapter(sandbox)
    await _arm(sandbox, "blocked")
    video = await _run(adapter, Operation.video_generate, GenerateVideo(prompt="waves"))
    assert isinstance(video, Failed) and video.code is ErrorCode.content_blocked
    await _arm(sandbox, "blocked")
    audio = await _run(adapter, Operation.audio_generate, GenerateAudio(prompt="lofi beat"))
    assert isinstance(audio, Failed) and audio.code is ErrorCode.content_blocked


async def test_the_adapter_reads_models_and_balance(sandbox: httpx.AsyncClient) -> None:
    adapter = _adapter(sandbox)
    models = {model.id: model for model in await adapter.models()}
    assert {"flux-schnell", "sdxl", "musicgen-small", "wan2.1", "virtual-tryon"} <= set(models)
    assert models["sdxl"].endpoint == "POST /v1/image/generate"
    assert models["upscale-4x"].credits == 20.0
    assert await adapter.balance() == ProviderBalance(emulator.PLAN_CREDITS, "credits")
    await _run(adapter, Operation.image_restore_face, RestoreFace(image=PHOTO_FILE))
    assert await adapter.balance() == ProviderBalance(emulator.PLAN_CREDITS - 5, "credits")
