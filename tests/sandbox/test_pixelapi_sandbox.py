"""The PixelAPI emulator over ASGI: the CDN and key checks, the job lifecycle, real outputs,
documented errors and headers, faults, counters, and the adapter talking to it."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from PIL import Image

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.media import ImageInput
from app.domain.operations import (
    GenerateImage,
    Operation,
    Params,
    RemoveBackground,
    RemoveObject,
    Upscale,
)
from app.providers.base import (
    AdapterConfig,
    Call,
    Credential,
    Failed,
    Media,
    PollTrouble,
    Progress,
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
from tests.utils.media import marked_mask, marked_photo, mask_png, noise_png
from tests.utils.media_source import DictMedia
from tests.utils.sandbox import CONTROL, sandbox_app

ROOT = "/_sandbox/pixelapi"
UA = {"User-Agent": "MyApp/1.0"}
AUTH = {"Authorization": f"Bearer {PIXELAPI_API_KEY}", **UA}
PHOTO = images.render(300, 200, "jpeg", seed=3)
JOB_S = 0.2
MISSING_KEY = "Missing API key. Use Authorization: Bearer YOUR_API_KEY"


@pytest.fixture
def sandbox_timing() -> SandboxTiming:
    return SandboxTiming(job_s=JOB_S)


@pytest.fixture
def files() -> Iterator[respx.MockRouter]:
    """Where ``image_url`` inputs live; the emulator downloads them with httpx."""
    with respx.mock(base_url="https://files.test", assert_all_called=False) as router:
        router.get("/product.png").respond(200, content=images.render(120, 90, "png"))
        router.get("/notes.txt").respond(200, text="not a picture")
        router.get("/gone.png").respond(404)
        yield router


async def _upload(
    client: httpx.AsyncClient, operation: str, content: bytes = PHOTO, **fields: str
) -> httpx.Response:
    files = {"image": ("photo.jpg", content, "image/jpeg")}
    path = f"{ROOT}/v1/image/{operation}"
    return await client.post(path, headers=AUTH, files=files, data=fields)


async def _generate(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post(f"{ROOT}/v1/image/generate", headers=AUTH, json=body)


async def _poll(client: httpx.AsyncClient, generation_id: str) -> httpx.Response:
    return await client.get(f"{ROOT}/v1/image/{generation_id}", headers=AUTH)


async def _until_done(client: httpx.AsyncClient, generation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await _poll(client, generation_id)).json()
        if body["status"] not in ("queued", "processing"):
            return body
        await asyncio.sleep(0.03)
    raise AssertionError("the job never finished")


async def _output(client: httpx.AsyncClient, body: dict[str, Any]) -> Image.Image:
    assert body["status"] == "completed", body
    response = await client.get(body["output_url"], headers=UA)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


async def _arm(client: httpx.AsyncClient, fault: str, count: int = 1) -> None:
    body = {"provider": "pixelapi", "fault": fault, "count": count}
    assert (await client.post("/_sandbox/faults", json=body, headers=CONTROL)).status_code == 204


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return stats.get("pixelapi", {"requests": 0, "submissions": 0, "by_endpoint": {}})


def _assert_rate_headers(response: httpx.Response) -> None:
    assert int(response.headers["X-RateLimit-Remaining"]) >= 0
    assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time()) - 1


# CDN and key ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (UA, MISSING_KEY),
        ({**UA, "Authorization": "Bearer pk_live_wrong"}, "Invalid API key"),
        ({**UA, "X-API-Key": PIXELAPI_API_KEY}, MISSING_KEY),
        ({**UA, "Authorization": f"Basic {PIXELAPI_API_KEY}"}, MISSING_KEY),
    ],
)  # fmt: skip
async def test_a_missing_or_wrong_key_is_401(
    sandbox: httpx.AsyncClient, headers: dict[str, str], detail: str
) -> None:
    response = await sandbox.get(f"{ROOT}/v1/account/balance", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    _assert_rate_headers(response)


@pytest.mark.parametrize(
    "agent",
    [
        None,
        "",
        "python-httpx/0.28.1",
        "python-requests/2.32.3",
        "Python-urllib/3.11",
        "Python/3.12 aiohttp/3.9.5",
        "curl/8.5.0",
        "Go-http-client/1.1",
    ],
)
async def test_a_missing_or_stock_user_agent_is_blocked_by_the_cdn(
    sandbox: httpx.AsyncClient, agent: str | None
) -> None:
    request = sandbox.build_request("GET", f"{ROOT}/v1/models", headers=AUTH)
    del request.headers["user-agent"]
    if agent is not None:
        request.headers["user-agent"] = agent
    response = await sandbox.send(request)
    assert response.status_code == 403
    assert response.text == "error code: 1010"
    _assert_rate_headers(response)


@pytest.mark.parametrize(
    "agent", ["MyApp/1.0", "mediagate/0.1", "MyApp/1.0 python-requests/2.31", "Shop (+ops) curl/8"]
)
async def test_a_custom_user_agent_passes(sandbox: httpx.AsyncClient, agent: str) -> None:
    response = await sandbox.get(f"{ROOT}/v1/models", headers={**AUTH, "User-Agent": agent})
    assert response.status_code == 200


# lifecycle and outputs ------------------------------------------------------------------------


async def test_remove_background_lifecycle_and_transparent_output(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    submitted = await _upload(sandbox, "remove-background")
    assert submitted.status_code == 200
    body = submitted.json()
    assert body.keys() == {"generation_id", "status", "operation", "credits_used"}
    assert body["generation_id"].startswith("bg-rm-")
    assert (body["status"], body["operation"], body["credits_used"]) == (
        "queued",
        "remove-background",
        4.0,
    )
    generation_id = body["generation_id"]

    queued = (await _poll(sandbox, generation_id)).json()
    assert (queued["status"], queued["output_url"]) == ("queued", None)
    clock.now += JOB_S * 0.5
    processing = (await _poll(sandbox, generation_id)).json()
    assert (processing["status"], processing["output_url"]) == ("processing", None)
    early = await sandbox.get(f"{ROOT}/outputs/images/2026/01/01/{generation_id}.png", headers=UA)
    assert early.status_code == 404
    clock.now += JOB_S
    done = (await _poll(sandbox, generation_id)).json()
    assert done.keys() == {
        "id", "status", "output_url", "operation", "credits_used", "created_at"
    }  # fmt: skip
    assert (done["id"], done["status"], done["credits_used"]) == (generation_id, "completed", 4.0)
    assert done["output_url"].startswith(f"{BASE}{ROOT}/outputs/images/")

    image = await _output(sandbox, done)
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (300, 200))


async def test_generation_completes_in_real_time_at_the_documented_size(
    sandbox: httpx.AsyncClient,
) -> None:
    submitted = await _generate(sandbox, model="flux-schnell", prompt="earbuds")
    assert submitted.json() == {
        "generation_id": submitted.json()["generation_id"],
        "status": "queued",
        "model": "flux-schnell",
        "credits_used": 5.0,
    }
    done = await _until_done(sandbox, submitted.json()["generation_id"])
    assert (done["operation"], done["model"]) == ("generate", "flux-schnell")
    assert (await _output(sandbox, done)).size == (1024, 1024)


async def test_generation_honours_width_height_and_sdxl_options(
    sandbox: httpx.AsyncClient,
) -> None:
    submitted = await _generate(
        sandbox,
        model="sdxl",
        prompt="perfume bottle",
        negative_prompt="blur",
        width=768,
        height=512,
        steps=30,
        guidance_scale=7.5,
        seed=42,
    )
    assert submitted.status_code == 200, submitted.text
    done = await _until_done(sandbox, submitted.json()["generation_id"])
    assert (await _output(sandbox, done)).size == (768, 512)


async def test_upscale_is_four_times_the_input(sandbox: httpx.AsyncClient) -> None:
    submitted = await _upload(sandbox, "upscale", images.render(100, 60, "webp"))
    assert submitted.json()["generation_id"].startswith("up-")
    assert submitted.json()["credits_used"] == 20.0
    done = await _until_done(sandbox, submitted.json()["generation_id"])
    assert (await _output(sandbox, done)).size == (400, 240)


async def test_upscale_refuses_an_output_past_4096(sandbox: httpx.AsyncClient) -> None:
    response = await _upload(sandbox, "upscale", images.render(1025, 16, "png"))
    assert response.status_code == 400
    assert "4096x4096" in response.json()["detail"]


async def test_image_url_is_downloaded_and_measured(
    sandbox: httpx.AsyncClient, files: respx.MockRouter
) -> None:
    submitted = await sandbox.post(
        f"{ROOT}/v1/image/remove-background",
        headers=AUTH,
        json={"image_url": "https://files.test/product.png"},
    )
    assert submitted.status_code == 200, submitted.text
    assert files.routes[0].calls.last.request.headers["user-agent"] == emulator.FETCH_USER_AGENT
    done = await _until_done(sandbox, submitted.json()["generation_id"])
    assert (await _output(sandbox, done)).size == (120, 90)


@pytest.mark.parametrize("url", ["https://files.test/gone.png", "https://files.test/notes.txt"])
async def test_an_image_url_that_is_not_a_picture_is_400(
    sandbox: httpx.AsyncClient, files: respx.MockRouter, url: str
) -> None:
    response = await sandbox.post(f"{ROOT}/v1/image/upscale", headers=AUTH, json={"image_url": url})
    assert response.status_code == 400
    assert (await _stats(sandbox))["submissions"] == 0


async def test_outputs_need_no_key_but_a_proper_user_agent(sandbox: httpx.AsyncClient) -> None:
    submitted = await _upload(sandbox, "remove-background")
    done = await _until_done(sandbox, submitted.json()["generation_id"])
    blocked = await sandbox.get(done["output_url"], headers={"User-Agent": "curl/8.5.0"})
    assert blocked.status_code == 403
    served = await sandbox.get(done["output_url"], headers=UA)
    assert served.status_code == 200
    _assert_rate_headers(served)


async def test_unknown_generation_is_404(sandbox: httpx.AsyncClient) -> None:
    response = await _poll(sandbox, "bg-rm-nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Generation not found"}


# request errors -------------------------------------------------------------------------------


async def test_image_and_image_url_together_are_400(sandbox: httpx.AsyncClient) -> None:
    response = await _upload(sandbox, "remove-background", image_url="https://files.test/a.png")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Provide either image (file upload) or image_url (JSON), not both."
    }


async def test_no_image_at_all_is_422(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(f"{ROOT}/v1/image/upscale", headers=AUTH, json={})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "image"]


async def test_a_file_over_10_mb_is_413(sandbox: httpx.AsyncClient) -> None:
    response = await _upload(sandbox, "remove-background", PHOTO + b"\0" * (10 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json() == {"detail": "File too large. Maximum size is 10MB."}


@pytest.mark.parametrize(
    "content", [b"GIF89a not supported", images.render(4097, 8, "png"), b"plain bytes"]
)
async def test_unreadable_unsupported_or_oversized_images_are_400(
    sandbox: httpx.AsyncClient, content: bytes
) -> None:
    response = await _upload(sandbox, "remove-background", content)
    assert response.status_code == 400


async def test_other_content_types_are_400(sandbox: httpx.AsyncClient) -> None:
    response = await sandbox.post(
        f"{ROOT}/v1/image/remove-background", headers=AUTH, content=b"image_url=x"
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "sd1.5", "prompt": "p"}, "model"),
        ({"prompt": "p"}, "model"),
        ({"model": "sdxl"}, "prompt"),
        ({"model": "sdxl", "prompt": "p", "width": 256}, "width"),
        ({"model": "sdxl", "prompt": "p", "height": 2048}, "height"),
        ({"model": "flux-schnell", "prompt": "p", "steps": 30}, None),
        ({"model": "sdxl", "prompt": "p", "seed": "abc"}, "seed"),
    ],
)
async def test_generation_validation_is_422_in_fastapi_shape(
    sandbox: httpx.AsyncClient, body: dict[str, Any], field: str | None
) -> None:
    response = await _generate(sandbox, **body)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error.keys() >= {"type", "loc", "msg"}
    assert error["loc"] == (["body", field] if field else ["body"])
    assert (await _stats(sandbox))["submissions"] == 0


# credits and rate limits ----------------------------------------------------------------------


async def test_credits_run_out_with_the_documented_402(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(emulator, "PLAN_CREDITS", 6.0)
    app = sandbox_app(SandboxTiming(job_s=JOB_S))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        assert (await _upload(client, "remove-background")).status_code == 200
        refused = await _upload(client, "remove-background")
        balance = await client.get(f"{ROOT}/v1/account/balance", headers=AUTH)
    assert refused.status_code == 402
    assert refused.json() == {
        "detail": "Insufficient credits. Required: 4, available: 2. "
        "Upgrade at https://pixelapi.dev/app/#pricing"
    }
    _assert_rate_headers(refused)
    assert balance.json() == {
        "credits_remaining": 2.0,
        "plan": "scale",
        "email": emulator.ACCOUNT_EMAIL,
    }


async def test_the_plan_rate_limit_meters_submissions_with_headers(
    sandbox: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "REQUESTS_PER_MINUTE", 2)
    first = await _generate(sandbox, model="sdxl", prompt="p")
    second = await _generate(sandbox, model="sdxl", prompt="p")
    third = await _generate(sandbox, model="sdxl", prompt="p")
    assert [r.status_code for r in (first, second, third)] == [200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in (first, second, third)] == ["1", "0", "0"]
    assert "Rate limit exceeded" in third.json()["detail"]
    assert time.time() < int(third.headers["X-RateLimit-Reset"]) <= time.time() + 61
    assert (await _stats(sandbox))["submissions"] == 2

    polled = await _poll(sandbox, first.json()["generation_id"])
    assert polled.status_code == 200, "status polls are not metered"
    assert polled.headers["X-RateLimit-Remaining"] == "0"
    assert (await sandbox.get(f"{ROOT}/v1/models", headers=AUTH)).status_code == 200
    assert (await sandbox.get(f"{ROOT}/v1/models", headers=UA)).status_code == 401


async def test_models_and_balance_are_documented(sandbox: httpx.AsyncClient) -> None:
    models = (await sandbox.get(f"{ROOT}/v1/models", headers=AUTH)).json()["models"]
    assert {m["id"]: m["credits"] for m in models} == {
        "flux-schnell": 5.0,
        "sdxl": 5.0,
        "upscale-4x": 20.0,
        "remove-background": 4.0,
        "replace-background": 8.0,
        "restore-face": 5.0,
        "remove-object": 8.0,
        "musicgen-small": 5.0,
        "wan2.1": 50.0,
        "virtual-tryon": 25.0,
    }
    assert all(m["endpoint"].startswith("POST /v1/") for m in models)
    await _generate(sandbox, model="sdxl", prompt="p")
    balance = (await sandbox.get(f"{ROOT}/v1/account/balance", headers=AUTH)).json()
    assert balance["credits_remaining"] == emulator.PLAN_CREDITS - 5


# faults ---------------------------------------------------------------------------------------


async def test_fault_http_500_refuses_the_submission(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "http_500")
    failed = await _upload(sandbox, "remove-background")
    assert failed.status_code == 500
    assert "detail" in failed.json()
    assert (await _upload(sandbox, "remove-background")).status_code == 200
    assert (await _stats(sandbox))["submissions"] == 1


async def test_fault_garbage_is_200_without_json(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "garbage")
    response = await _generate(sandbox, model="sdxl", prompt="p")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


async def test_fault_timeout_never_answers(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "timeout")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_upload(sandbox, "upscale"), timeout=0.3)


@pytest.mark.parametrize(
    ("fault", "status", "detail"),
    [
        ("rate_limit", 429, "Rate limit exceeded"),
        ("no_credits", 402, "Insufficient credits. Required: 20, available: 0."),
    ],
)
async def test_faults_with_documented_error_bodies(
    sandbox: httpx.AsyncClient, fault: str, status: int, detail: str
) -> None:
    await _arm(sandbox, fault)
    response = await _upload(sandbox, "upscale")
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)
    _assert_rate_headers(response)
    assert (await _stats(sandbox))["submissions"] == 0


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [("blocked", "blocked", "Content policy"), ("no_face", "failed", "No face")],
)
async def test_blocked_and_no_face_end_the_job_and_refund_it(
    sandbox: httpx.AsyncClient, fault: str, status: str, error: str
) -> None:
    await _arm(sandbox, fault)
    submitted = await _upload(sandbox, "remove-background")
    assert submitted.json()["status"] == "queued"
    done = await _until_done(sandbox, submitted.json()["generation_id"])
    assert (done["status"], done["output_url"], done["credits_used"]) == (status, None, 0.0)
    assert done["error"].startswith(error)
    balance = (await sandbox.get(f"{ROOT}/v1/account/balance", headers=AUTH)).json()
    assert balance["credits_remaining"] == emulator.PLAN_CREDITS
    assert (await _stats(sandbox))["submissions"] == 1


async def test_faults_on_a_poll(sandbox: httpx.AsyncClient, clock: Clock) -> None:
    generation_id = (await _upload(sandbox, "remove-background")).json()["generation_id"]
    await _arm(sandbox, "http_500")
    assert (await _poll(sandbox, generation_id)).status_code == 500
    await _arm(sandbox, "blocked")
    assert (await _poll(sandbox, generation_id)).json()["status"] == "blocked"
    clock.now += 10
    assert (await _poll(sandbox, generation_id)).json()["status"] == "blocked"


async def test_stats_count_requests_and_submissions(sandbox: httpx.AsyncClient) -> None:
    generation_id = (await _upload(sandbox, "remove-background")).json()["generation_id"]
    await _poll(sandbox, generation_id)
    await _poll(sandbox, generation_id)
    await sandbox.get(f"{ROOT}/v1/models", headers={"User-Agent": ""})
    await _generate(sandbox, model="nope", prompt="p")
    stats = await _stats(sandbox)
    assert (stats["requests"], stats["submissions"]) == (5, 1)
    assert stats["by_endpoint"] == {
        "/v1/image/remove-background": 1,
        "/v1/image/{generation_id}": 2,
        "/v1/models": 1,
        "/v1/image/generate": 1,
    }


# the adapter against the emulator -------------------------------------------------------------


MEDIA = DictMedia({"file_photo": Media(PHOTO, "image/jpeg")})
PHOTO_FILE = ImageInput(file_id="file_photo")


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
    assert isinstance(submitted, Submitted), submitted
    for _ in range(200):
        result = await adapter.poll(call, submitted.provider_job_id)
        if not isinstance(result, Progress):
            return result
        await asyncio.sleep(result.poll_after_s)
    raise AssertionError("the adapter never saw the job finish")


@pytest.mark.parametrize(
    ("operation", "params", "size", "mode"),
    [
        (Operation.image_remove_background, RemoveBackground(image=PHOTO_FILE), (300, 200), "RGBA"),
        (Operation.image_upscale, Upscale(image=PHOTO_FILE, scale=4), (1200, 800), "RGB"),
        (Operation.image_generate, GenerateImage(prompt="p", width=640), (640, 1024), "RGB"),
    ],
)  # fmt: skip
async def test_the_adapter_runs_jobs_against_the_emulator(
    sandbox: httpx.AsyncClient,
    operation: Operation,
    params: Params,
    size: tuple[int, int],
    mode: str,
) -> None:
    result = await _run(_adapter(sandbox), operation, params)
    assert isinstance(result, Succeeded), result
    [output] = result.files
    assert output.content_type == "image/png"
    image = Image.open(io.BytesIO(output.content))
    assert (image.size, image.mode) == (size, mode)
    stats = await _stats(sandbox)
    assert stats["submissions"] == 1
    assert stats["by_endpoint"]["/outputs"] == 1


async def test_a_mask_over_an_image_made_smaller_is_taken_by_the_emulator(
    sandbox: httpx.AsyncClient,
) -> None:
    """A 13 MB 2400×1800 PNG is over "Max 10MB": the adapter sends it smaller, and its mask at
    the same size, so the emulator ("Same dimensions as source") takes the pair."""
    media = DictMedia(
        {
            "file_big": Media(noise_png(2400, 1800), "image/png"),
            "file_mask": Media(mask_png(2400, 1800), "image/png"),
        }
    )
    params = RemoveObject(
        image=ImageInput(file_id="file_big"), mask=ImageInput(file_id="file_mask")
    )
    submitted = await _adapter(sandbox).submit(
        Call("job_1", Operation.image_remove_object, params, media)
    )
    assert isinstance(submitted, Submitted), submitted


async def test_a_mask_over_a_turned_photos_stored_pixels_is_taken_by_the_emulator(
    sandbox: httpx.AsyncClient,
) -> None:
    """A photo stored 400×300 with EXIF orientation 6 and an untagged mask of its stored
    shape: the adapter sends both upright at 300×400, so the emulator ("Same dimensions as
    source") takes the pair."""
    media = DictMedia(
        {
            "file_photo": Media(marked_photo(400, 300, 6), "image/jpeg"),
            "file_mask": Media(marked_mask(400, 300), "image/png"),
        }
    )
    params = RemoveObject(
        image=ImageInput(file_id="file_photo"), mask=ImageInput(file_id="file_mask")
    )
    submitted = await _adapter(sandbox).submit(
        Call("job_1", Operation.image_remove_object, params, media)
    )
    assert isinstance(submitted, Submitted), submitted


async def test_the_adapter_reads_the_emulators_refusals(sandbox: httpx.AsyncClient) -> None:
    adapter = _adapter(sandbox)
    await _arm(sandbox, "blocked")
    blocked = await _run(
        adapter, Operation.image_remove_background, RemoveBackground(image=PHOTO_FILE)
    )
    assert isinstance(blocked, Failed) and blocked.code is ErrorCode.content_blocked

    await _arm(sandbox, "no_credits")
    call = Call("job_2", Operation.image_upscale, Upscale(image=PHOTO_FILE), MEDIA)
    empty = await adapter.submit(call)
    assert isinstance(empty, Failed)
    assert (empty.code, empty.retryable) == (ErrorCode.provider_unavailable, True)

    await _arm(sandbox, "rate_limit")
    limited = await adapter.submit(call)
    assert isinstance(limited, Failed) and limited.code is ErrorCode.provider_rate_limited
    assert limited.retry_after_s is not None and 0 < limited.retry_after_s <= 61

    await _arm(sandbox, "garbage")
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(call)

    wrong_key = PixelApiAdapter(
        sandbox,
        AdapterConfig(base_url=f"{BASE}{ROOT}", credentials=(Credential(api_key="pk_live_wrong"),)),
    )
    refused = await wrong_key.submit(call)
    assert isinstance(refused, Failed) and refused.code is ErrorCode.provider_auth_failed
