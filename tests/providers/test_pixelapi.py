"""The PixelAPI adapter against the request and response bodies of its document (respx)."""

from __future__ import annotations

import email
import email.policy
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from app.domain.errors import ErrorCode, ProviderUnavailable, UpstreamTimeout
from app.domain.media import ImageInput
from app.domain.operations import (
    GenerateAudio,
    GenerateImage,
    GenerateVideo,
    Operation,
    Params,
    RemoveBackground,
    RemoveObject,
    ReplaceBackground,
    RestoreFace,
    TryOn,
    Upscale,
)
from app.providers import pixelapi
from app.providers import pixelapi_requests as requests
from app.providers.base import (
    AdapterConfig,
    Call,
    Credential,
    Failed,
    Media,
    OutputFile,
    PollTrouble,
    Progress,
    Submitted,
    Succeeded,
)
from app.providers.pixelapi import PixelApiAdapter
from app.providers.pixelapi_errors import TABLE
from tests.utils.media import decode_image, png_bytes
from tests.utils.media_source import DictMedia

BASE = "https://api.pixelapi.dev"
KEY = "pk_live_test0000"
PNG = b"\x89PNG\r\n\x1a\n pretend pixels"
UPLOAD = b"\xff\xd8\xff\xe0 a jpeg upload"
OUTPUT_URL = "https://api.pixelapi.dev/outputs/images/2026/02/19/abc123.png"
GEN_ID = "bg-rm-a1b2c3d4-0000"


MEDIA = DictMedia({"file_abc": Media(UPLOAD, "image/jpeg")})
FILE = ImageInput(file_id="file_abc")
URL = ImageInput(url="https://example.com/product.jpg")
BIG = ImageInput(file_id="file_big")


def _call(operation: Operation, params: Params) -> Call:
    return Call(job_id="job_1", operation=operation, params=params, media=MEDIA)


REMOVE_BG = _call(Operation.image_remove_background, RemoveBackground(image=FILE))
TRY_ON = _call(Operation.image_try_on, TryOn(person=FILE, garment=FILE, category="dress"))


@pytest.fixture
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def adapter() -> AsyncIterator[PixelApiAdapter]:
    config = AdapterConfig(
        base_url=BASE + "/",
        credentials=(Credential(api_key=KEY),),
        timeout_s=5,
        poll_interval_s=2.5,
    )
    async with httpx.AsyncClient() as client:
        yield PixelApiAdapter(client, config)


def _multipart_files(request: httpx.Request) -> dict[str, bytes]:
    """The files of a multipart request, by field name."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + request.content, policy=email.policy.HTTP)
    files = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes) and part.get_filename():
            files[name] = payload
    return files


def _queued(**extra: object) -> httpx.Response:
    body = {"generation_id": GEN_ID, "status": "queued", "credits_used": 4.0, **extra}
    return httpx.Response(200, json=body)


def _status(status: str, **extra: object) -> httpx.Response:
    body = {
        "id": GEN_ID,
        "status": status,
        "operation": "remove-background",
        "credits_used": 4.0,
        "created_at": "2026-02-19T08:00:00Z",
        **extra,
    }
    return httpx.Response(200, json=body)


# submissions -----------------------------------------------------------------------------------


async def test_generate_sends_documented_json_with_headers(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.post("/v1/image/generate").mock(
        return_value=httpx.Response(
            200,
            json={
                "generation_id": "a1b2c3d4",
                "status": "queued",
                "model": "sdxl",
                "credits_used": 5.0,
            },
        )
    )
    params = GenerateImage(
        prompt="wireless earbuds",
        model="sdxl",
        negative_prompt="blur",
        width=768,
        height=1536,
        steps=40,
        guidance_scale=6.5,
        seed=7,
    )
    result = await adapter.submit(_call(Operation.image_generate, params))

    assert result == Submitted("a1b2c3d4", poll_after_s=2.5)
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"] == "mediagate/0.1"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "model": "sdxl",
        "prompt": "wireless earbuds",
        "negative_prompt": "blur",
        "width": 768,
        "height": 1536,
        "steps": 40,
        "guidance_scale": 6.5,
        "seed": 7,
    }


@pytest.mark.parametrize(
    ("params", "refused"),
    [
        (GenerateImage(prompt="p", model="sdxl", steps=20), None),
        (GenerateImage(prompt="p", model="sdxl", steps=50, guidance_scale=0), None),
        (GenerateImage(prompt="p", model="sdxl", steps=19), "steps"),
        (GenerateImage(prompt="p", model="flux-schnell", steps=8), None),
        (GenerateImage(prompt="p", steps=9), "steps"),  # flux-schnell by default: 1–8
    ],
)
def test_steps_follow_each_models_documented_range(
    params: GenerateImage, refused: str | None
) -> None:
    """ "steps … SDXL: 20–50 (default 30). FLUX: 1–8 (default 4)"; guidance_scale passes."""
    assert BINDINGS[Operation.image_generate].refuses(params) == refused


async def test_generate_defaults_to_flux_and_sends_only_given_fields(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.post("/v1/image/generate").mock(return_value=_queued(model="flux-schnell"))
    await adapter.submit(_call(Operation.image_generate, GenerateImage(prompt="headphones")))
    assert json.loads(route.calls.last.request.content) == {
        "model": "flux-schnell",
        "prompt": "headphones",
    }


async def test_file_reference_is_uploaded_as_multipart_image(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.post("/v1/image/remove-background").mock(return_value=_queued())
    assert await adapter.submit(REMOVE_BG) == Submitted(GEN_ID, poll_after_s=2.5)

    request = route.calls.last.request
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.headers["user-agent"] == "mediagate/0.1"
    body = request.content
    assert b'name="image"; filename="image.jpeg"' in body
    assert b"Content-Type: image/jpeg" in body
    assert UPLOAD in body
    assert b"image_url" not in body


async def test_url_reference_is_sent_as_json_image_url(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.post("/v1/image/upscale").mock(return_value=_queued(operation="upscale"))
    call = _call(Operation.image_upscale, Upscale(image=URL, scale=4))
    assert isinstance(await adapter.submit(call), Submitted)
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"image_url": "https://example.com/product.jpg"}


async def test_an_upscale_upload_is_fitted_so_its_4x_output_stays_within_4096(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    """Upscale is always 4× and the document's 4096×4096 is read to bound its output (the
    sandbox refuses a larger input): a 2000×1500 upload goes up at 1024×768; another image
    endpoint keeps the whole 4096 px."""
    big = png_bytes(2000, 1500)
    media = DictMedia({"file_big": Media(big, "image/png")})
    sizes = {}
    for operation, params, path in (
        (Operation.image_upscale, Upscale(image=BIG, scale=4), "/v1/image/upscale"),
        (Operation.image_restore_face, RestoreFace(image=BIG), "/v1/image/restore-face"),
    ):
        route = upstream.post(path).mock(return_value=_queued())
        call = Call(job_id="job_1", operation=operation, params=params, media=media)
        assert isinstance(await adapter.submit(call), Submitted)
        files = _multipart_files(route.calls.last.request)
        sizes[operation] = decode_image(files["image"]).size
        assert bool(call.conformed) is (operation is Operation.image_upscale)
    assert sizes == {
        Operation.image_upscale: (1024, 768),
        Operation.image_restore_face: (2000, 1500),
    }


async def test_missing_key_sends_no_authorization(upstream: respx.MockRouter) -> None:
    route = upstream.post("/v1/image/remove-background").mock(
        return_value=httpx.Response(401, json={"detail": "Missing API key"})
    )
    async with httpx.AsyncClient() as client:
        adapter = PixelApiAdapter(client, AdapterConfig(base_url=BASE))
        result = await adapter.submit(REMOVE_BG)
    assert "authorization" not in route.calls.last.request.headers
    assert isinstance(result, Failed) and result.code is ErrorCode.provider_auth_failed


# polling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["queued", "processing", "pending"])
async def test_running_statuses_are_progress(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, status: str
) -> None:
    route = upstream.get(f"/v1/image/{GEN_ID}").mock(return_value=_status(status, output_url=None))
    assert await adapter.poll(REMOVE_BG, GEN_ID) == Progress(poll_after_s=2.5)
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"
    assert route.calls.last.request.headers["user-agent"] == "mediagate/0.1"


async def test_completed_downloads_output_without_the_key(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=_status("completed", output_url=OUTPUT_URL)
    )
    download = upstream.get(OUTPUT_URL).mock(
        return_value=httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
    )
    result = await adapter.poll(REMOVE_BG, GEN_ID)

    assert result == Succeeded(files=[OutputFile(PNG, "image/png")])
    headers = download.calls.last.request.headers
    assert "authorization" not in headers
    assert headers["user-agent"] == "mediagate/0.1"


async def test_untyped_output_is_sniffed(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=_status("completed", output_url=OUTPUT_URL)
    )
    upstream.get(OUTPUT_URL).mock(
        return_value=httpx.Response(
            200, content=PNG, headers={"content-type": "application/octet-stream"}
        )
    )
    result = await adapter.poll(REMOVE_BG, GEN_ID)
    assert isinstance(result, Succeeded) and result.files[0].content_type == "image/png"


async def test_output_that_is_not_an_image_is_unreadable(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=_status("completed", output_url=OUTPUT_URL)
    )
    upstream.get(OUTPUT_URL).mock(
        return_value=httpx.Response(
            200, text="<html>oops</html>", headers={"content-type": "text/html"}
        )
    )
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(REMOVE_BG, GEN_ID)


async def test_expired_output_raises(upstream: respx.MockRouter, adapter: PixelApiAdapter) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=_status("completed", output_url=OUTPUT_URL)
    )
    upstream.get(OUTPUT_URL).mock(return_value=httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(ProviderUnavailable, match="404"):
        await adapter.poll(REMOVE_BG, GEN_ID)


async def test_failed_status_is_retryable_upstream_failure(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=_status(
            "failed", output_url=None, error="CUDA out of memory", credits_used=0.0
        )
    )
    result = await adapter.poll(REMOVE_BG, GEN_ID)
    assert isinstance(result, Failed)
    assert result.code is ErrorCode.upstream_failed
    assert result.retryable is True
    assert result.provider_code == "failed"
    assert "CUDA out of memory" in result.message


async def test_failed_status_reads_error_message_too(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=_status("failed", error_message="model crashed")
    )
    result = await adapter.poll(REMOVE_BG, GEN_ID)
    assert isinstance(result, Failed) and "model crashed" in result.message


async def test_blocked_status_is_content_blocked_not_retryable(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(return_value=_status("blocked", credits_used=0.0))
    result = await adapter.poll(REMOVE_BG, GEN_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable, result.provider_code) == (
        ErrorCode.content_blocked,
        False,
        "blocked",
    )


async def test_poll_escapes_the_generation_id(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.get(url__regex=r".*/v1/image/.*").mock(return_value=_status("queued"))
    await adapter.poll(REMOVE_BG, "../account/balance")
    assert route.calls.last.request.url.raw_path == b"/v1/image/..%2Faccount%2Fbalance"


@pytest.mark.parametrize(
    "body",
    [
        {"id": GEN_ID},
        {"id": GEN_ID, "status": ""},
        {"id": GEN_ID, "status": "completed"},
        {"id": GEN_ID, "status": "completed", "output_url": "ftp://nope"},
        ["not", "an", "object"],
    ],
)
async def test_unreadable_status_bodies_raise(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, body: object
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(REMOVE_BG, GEN_ID)


async def test_an_unknown_status_is_logged_raw_and_read_as_running(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=httpx.Response(200, json={"id": GEN_ID, "status": "warming_up"})
    )
    assert await adapter.poll(REMOVE_BG, GEN_ID) == Progress(poll_after_s=2.5)
    assert "'warming_up'" in caplog.text


# errors ----------------------------------------------------------------------------------------

INSUFFICIENT = (
    "Insufficient credits. Required: 2, available: 0. Upgrade at https://pixelapi.dev/app/#pricing"
)


def _error(status: int, detail: object) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail})


MISSING_IMAGE = [{"type": "missing", "loc": ["body", "image"], "msg": "Field required"}]


@pytest.mark.parametrize(
    ("response", "code", "retryable", "text"),
    [
        (_error(400, "Invalid image file"), ErrorCode.invalid_parameter, False, "Invalid image"),
        (_error(401, "Invalid API key"), ErrorCode.provider_auth_failed, True, "Invalid API key"),
        (_error(402, INSUFFICIENT), ErrorCode.provider_unavailable, True, "Required: 2"),
        (
            httpx.Response(403, text="error code: 1010"),
            ErrorCode.provider_auth_failed,
            True,
            "1010",
        ),
        (_error(404, "Generation not found"), ErrorCode.upstream_failed, True, "not found"),
        (_error(413, "File too large."), ErrorCode.media_too_large, False, "File too large"),
        (_error(422, MISSING_IMAGE), ErrorCode.invalid_parameter, False, "Field required"),
        (_error(409, "Conflict"), ErrorCode.upstream_failed, False, "Conflict"),
    ],
)
async def test_http_errors_map_through_the_table(
    upstream: respx.MockRouter,
    adapter: PixelApiAdapter,
    response: httpx.Response,
    code: ErrorCode,
    retryable: bool,
    text: str,
) -> None:
    upstream.post("/v1/image/remove-background").mock(return_value=response)
    result = await adapter.submit(REMOVE_BG)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (code, retryable)
    assert text in result.message
    assert result.provider_code == f"http_{response.status_code}"
    assert result.retry_after_s is None
    assert KEY not in result.message


TRY_ON_ERRORS = [
    (422, "image_too_small", ErrorCode.invalid_media, False),
    (422, "wrong_aspect_ratio", ErrorCode.invalid_media, False),
    (422, "body_segmentation_failed", ErrorCode.invalid_media, False),
    (422, "invalid_category", ErrorCode.invalid_parameter, False),
    (400, "invalid_image", ErrorCode.invalid_media, False),
    (503, "gpu_out_of_memory", ErrorCode.provider_unavailable, True),
]


@pytest.mark.parametrize(("status", "error", "code", "retryable"), TRY_ON_ERRORS)
async def test_try_on_error_codes_map_through_the_table(
    upstream: respx.MockRouter,
    adapter: PixelApiAdapter,
    status: int,
    error: str,
    code: ErrorCode,
    retryable: bool,
) -> None:
    detail = {
        "error": error,
        "message": "Person image is too small (minimum 100px)...",
        "guidance": "Use a photo that is at least 300x400px...",
        "received_size": "48x32px",
    }
    upstream.post("/v1/virtual-tryon").mock(
        return_value=httpx.Response(status, json={"detail": detail})
    )
    result = await adapter.submit(TRY_ON)
    assert isinstance(result, Failed), "a documented code is returned, never raised"
    assert (result.code, result.retryable, result.provider_code) == (code, retryable, error)
    assert "Person image is too small (minimum 100px)..." in result.message
    assert "48x32px" in result.message


async def test_gpu_out_of_memory_honours_retry_after(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    detail = {"error": "gpu_out_of_memory", "message": "GPU busy", "guidance": "Retry"}
    upstream.post("/v1/virtual-tryon").mock(
        return_value=httpx.Response(503, json={"detail": detail}, headers={"Retry-After": "4"})
    )
    result = await adapter.submit(TRY_ON)
    assert isinstance(result, Failed) and result.retry_after_s == 4.0


async def test_a_structured_code_wins_on_any_endpoint(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    detail = {"error": "invalid_image", "message": "Image data is corrupt"}
    upstream.post("/v1/image/remove-background").mock(
        return_value=httpx.Response(400, json={"detail": detail})
    )
    result = await adapter.submit(REMOVE_BG)
    assert isinstance(result, Failed)
    assert (result.code, result.provider_code) == (ErrorCode.invalid_media, "invalid_image")


async def test_an_undocumented_code_falls_back_to_the_http_row(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    detail = {"error": "cosmic_rays", "message": "Something new"}
    upstream.post("/v1/virtual-tryon").mock(
        return_value=httpx.Response(422, json={"detail": detail})
    )
    result = await adapter.submit(TRY_ON)
    assert isinstance(result, Failed)
    assert (result.code, result.provider_code) == (ErrorCode.invalid_parameter, "cosmic_rays")


async def test_an_undocumented_5xx_code_is_raised(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    detail = {"error": "kernel_panic", "message": "Oops"}
    upstream.post("/v1/virtual-tryon").mock(
        return_value=httpx.Response(500, json={"detail": detail})
    )
    with pytest.raises(ProviderUnavailable, match="Oops"):
        await adapter.submit(TRY_ON)


async def test_rate_limit_uses_x_ratelimit_reset(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    reset = int(time.time()) + 30
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    upstream.post("/v1/image/remove-background").mock(
        return_value=httpx.Response(429, json={"detail": "Rate limit exceeded"}, headers=headers)
    )
    result = await adapter.submit(REMOVE_BG)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.provider_rate_limited, True)
    assert result.retry_after_s is not None and 25 <= result.retry_after_s <= 30


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "7", "X-RateLimit-Reset": "60"}, 7.0), ({"X-RateLimit-Reset": "12"}, 12.0)],
)
async def test_rate_limit_prefers_retry_after_and_reads_small_resets_as_delays(
    upstream: respx.MockRouter,
    adapter: PixelApiAdapter,
    headers: dict[str, str],
    expected: float,
) -> None:
    upstream.post("/v1/image/remove-background").mock(
        return_value=httpx.Response(429, json={"detail": "Rate limited"}, headers=headers)
    )
    result = await adapter.submit(REMOVE_BG)
    assert isinstance(result, Failed) and result.retry_after_s == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "7"}, 7.0), ({"X-RateLimit-Reset": "1"}, 1.0), ({}, None)],
)
async def test_a_rate_limited_poll_is_trouble_reading_after_the_wait(
    upstream: respx.MockRouter,
    adapter: PixelApiAdapter,
    headers: dict[str, str],
    expected: float | None,
) -> None:
    """The upstream job runs on: failing the poll would make the gateway resubmit it."""
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=httpx.Response(429, json={"detail": "Rate limited"}, headers=headers)
    )
    result = await adapter.poll(REMOVE_BG, GEN_ID)
    assert isinstance(result, PollTrouble)
    assert result.retry_after_s == expected


@pytest.mark.parametrize("status", [401, 402, 403])
async def test_a_refused_poll_is_trouble_reading_not_a_failed_job(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, status: int
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=httpx.Response(status, json={"detail": "no"})
    )
    assert isinstance(await adapter.poll(REMOVE_BG, GEN_ID), PollTrouble)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_raise_provider_unavailable(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, status: int
) -> None:
    upstream.post("/v1/image/remove-background").mock(
        return_value=httpx.Response(status, json={"detail": "Internal server error"})
    )
    with pytest.raises(ProviderUnavailable, match=str(status)):
        await adapter.submit(REMOVE_BG)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html><body>Service temporarily unavailable</body></html>"),
        httpx.Response(200, json={"status": "queued"}),
        httpx.Response(200, json={"generation_id": 42}),
        httpx.Response(200, json="bg-rm-1"),
    ],
)
async def test_garbage_submission_answers_raise(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, response: httpx.Response
) -> None:
    upstream.post("/v1/image/remove-background").mock(return_value=response)
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(REMOVE_BG)


async def test_garbage_poll_answer_raises(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(return_value=httpx.Response(200, text="<html>"))
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(REMOVE_BG, GEN_ID)


async def test_timeout_is_upstream_timeout(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.post("/v1/image/remove-background").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout):
        await adapter.submit(REMOVE_BG)


async def test_refused_connection_is_provider_unavailable(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(REMOVE_BG, GEN_ID)


async def test_unbound_operation_is_refused_without_a_request(adapter: PixelApiAdapter) -> None:
    call = Call("job_1", Operation.image_outpaint, RemoveBackground(image=FILE), MEDIA)
    result = await adapter.submit(call)
    assert isinstance(result, Failed) and result.code is ErrorCode.unsupported_operation


# bindings, prices, limits, the table -------------------------------------------------------------

BINDINGS = PixelApiAdapter.bindings
OPERATIONS: dict[type[Params], Operation] = {
    GenerateImage: Operation.image_generate,
    RemoveBackground: Operation.image_remove_background,
    ReplaceBackground: Operation.image_replace_background,
    Upscale: Operation.image_upscale,
    RestoreFace: Operation.image_restore_face,
    RemoveObject: Operation.image_remove_object,
    TryOn: Operation.image_try_on,
    GenerateAudio: Operation.audio_generate,
    GenerateVideo: Operation.video_generate,
}


@pytest.mark.parametrize(
    ("params", "refused"),
    [
        (GenerateImage(prompt="p"), None),
        (GenerateImage(prompt="p", model="sdxl", negative_prompt="x"), None),
        (GenerateImage(prompt="p", model="flux-schnell", width=512, height=1536, seed=3), None),
        (GenerateImage(prompt="p", model="sd1.5"), "model"),
        (GenerateImage(prompt="p", aspect="wide"), "aspect"),
        (GenerateImage(prompt="p", output_format="webp"), "output_format"),
        (GenerateImage(prompt="p", width=2048), "width"),
        (GenerateImage(prompt="p", height=256), "height"),
        (GenerateImage(prompt="p", negative_prompt="x"), "negative_prompt"),
        (GenerateImage(prompt="p", model="flux-schnell", negative_prompt="x"), "negative_prompt"),
        (RemoveBackground(image=FILE), None),
        (RemoveBackground(image=FILE, seed=1), "seed"),
        (ReplaceBackground(image=FILE, prompt="marble"), None),
        (ReplaceBackground(image=URL, prompt="marble", negative_prompt="x"), "negative_prompt"),
        (ReplaceBackground(image=FILE, prompt="marble", seed=2), "seed"),
        (Upscale(image=FILE), None),
        (Upscale(image=URL, scale=4), None),
        (Upscale(image=FILE, scale=2), "scale"),
        (Upscale(image=FILE, scale=8), "scale"),
        (Upscale(image=FILE, scale=4, output_format="png"), "output_format"),
        (RestoreFace(image=FILE), None),
        (RemoveObject(image=FILE, mask=FILE), None),
        (RemoveObject(image=FILE, prompt="the watermark"), None),
        (RemoveObject(image=FILE, mask=FILE, prompt="the watermark"), None),
        (TryOn(person=FILE, garment=FILE), None),
        (TryOn(person=FILE, garment=FILE, category="upper_body"), None),
        (TryOn(person=FILE, garment=FILE, category="lower_body"), None),
        (TryOn(person=FILE, garment=FILE, category="dress"), None),
        (TryOn(person=FILE, garment=FILE, category="full_body"), None),
        (TryOn(person=FILE, garment=FILE, gender="female"), "gender"),
        (TryOn(person=FILE, garment=FILE, seed=1), "seed"),
        (TryOn(person=FILE, garment=FILE, output_format="png"), "output_format"),
        (GenerateAudio(prompt="calm lofi"), None),
        (GenerateAudio(prompt="calm lofi", duration_s=30, model="musicgen-small"), None),
        (GenerateAudio(prompt="ab"), "prompt"),
        (GenerateAudio(prompt="x" * 501), "prompt"),
        (GenerateAudio(prompt="x" * 500), None),
        (GenerateAudio(prompt="calm lofi", seed=1), "seed"),
        (GenerateVideo(prompt="a drone shot"), None),
        (
            GenerateVideo(
                prompt="a drone shot",
                negative_prompt="blur",
                duration_s=10,
                resolution="720p",
                seed=9,
            ),
            None,
        ),
        (GenerateVideo(prompt="a drone shot", image=FILE), "image"),
    ],
)
def test_bindings_refuse_what_the_document_does_not_offer(
    params: Params, refused: str | None
) -> None:
    assert BINDINGS[OPERATIONS[type(params)]].refuses(params) == refused


def test_every_operation_of_design_is_bound() -> None:
    assert set(BINDINGS) == set(OPERATIONS.values())


def test_try_on_categories_map_through_a_table() -> None:
    assert requests.TRY_ON_CATEGORIES == {
        "upper_body": "upperbody",
        "lower_body": "lowerbody",
        "dress": "dress",
        "full_body": "dress",
    }
    values = BINDINGS[Operation.image_try_on].values["category"]
    assert values == frozenset(requests.TRY_ON_CATEGORIES)


def test_prices_follow_the_endpoint_headings() -> None:
    prices = {op: binding.price for op, binding in BINDINGS.items()}
    assert prices == {
        Operation.image_generate: 5,
        Operation.image_remove_background: 4,
        Operation.image_replace_background: 8,
        Operation.image_upscale: 20,
        Operation.image_restore_face: 5,
        Operation.image_remove_object: 8,
        Operation.image_try_on: 25,
        Operation.audio_generate: 10,
        Operation.video_generate: 100,
    }


def test_limits_follow_the_plan_table() -> None:
    assert pixelapi.PLAN_REQUESTS_PER_MINUTE == {"free": 5, "starter": 20, "pro": 60, "scale": 200}
    [limit] = PixelApiAdapter.limits.values()
    # a credential whose plan is not said is taken to be on the most careful paid plan
    assert pixelapi.ASSUMED_PLAN == "starter"
    assert limit.rate_per_s == pytest.approx(20 / 60)
    assert limit.concurrent_jobs is None
    assert all(binding.limit in PixelApiAdapter.limits for binding in BINDINGS.values())


TESTED_ROWS = {
    # statuses: test_running_statuses_are_progress, test_completed_downloads_output_...,
    # test_failed_status_is_retryable_upstream_failure, test_blocked_status_is_content_blocked_...
    ("status", "queued"),
    ("status", "processing"),
    ("status", "pending"),
    ("status", "completed"),
    ("status", "failed"),
    ("status", "blocked"),
    # HTTP: test_http_errors_map_through_the_table, test_rate_limit_*, test_server_errors_*
    *(("http", status) for status in (400, 401, 402, 403, 404, 413, 422, 429, 500)),
    # try-on codes: test_try_on_error_codes_map_through_the_table
    *(("error", error) for _, error, _, _ in TRY_ON_ERRORS),
}


def test_every_row_of_the_table_is_tested() -> None:
    assert set(TABLE) == TESTED_ROWS


# what a task costs the account --------------------------------------------------------------------


async def test_submission_and_status_report_what_the_task_costs(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.post("/v1/image/remove-background").mock(
        return_value=httpx.Response(
            200, json={"generation_id": GEN_ID, "status": "queued", "credits_used": 4.0}
        )
    )
    submitted = await adapter.submit(REMOVE_BG)
    assert isinstance(submitted, Submitted) and submitted.cost == 4.0
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=_status("completed", output_url=OUTPUT_URL)
    )
    upstream.get(OUTPUT_URL).mock(
        return_value=httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
    )
    done = await adapter.poll(REMOVE_BG, GEN_ID)
    assert isinstance(done, Succeeded) and done.cost == 4.0


@pytest.mark.parametrize("status", ["failed", "blocked"])
async def test_a_failed_or_blocked_task_reports_it_cost_nothing(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, status: str
) -> None:
    upstream.get(f"/v1/image/{GEN_ID}").mock(
        return_value=_status(status, credits_used=0.0, error="Content policy violation")
    )
    result = await adapter.poll(REMOVE_BG, GEN_ID)
    assert isinstance(result, Failed) and result.cost == 0.0


@pytest.mark.parametrize("used", [None, "4", True, -1])
async def test_a_missing_or_unreadable_credits_used_reports_no_cost(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, used: object
) -> None:
    body: dict[str, object] = {"generation_id": GEN_ID, "status": "queued"}
    if used is not None:
        body["credits_used"] = used
    upstream.post("/v1/image/remove-background").mock(return_value=httpx.Response(200, json=body))
    submitted = await adapter.submit(REMOVE_BG)
    assert isinstance(submitted, Submitted) and submitted.cost is None
