"""The Image Pig adapter against the request and response bodies of its document (respx)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from app.errors import ErrorCode, ProviderUnavailable, UpstreamTimeout
from app.jobs.media import ImageInput
from app.jobs.operations import (
    GenerateImage,
    Operation,
    Outpaint,
    Params,
    RemoveBackground,
    SwapFace,
    Upscale,
)
from app.providers.base import AdapterConfig, Call, Credential, Failed, Media, OutputFile, Succeeded
from app.providers.imagepig import ImagePigAdapter
from tests.utils.media_source import DictMedia

BASE = "https://api.imagepig.com"
KEY = "your-api-key"
PNG = b"\x89PNG\r\n\x1a\n pretend pixels"
FILE_BYTES = b"\xff\xd8\xff\xe0 a jpeg upload"


def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


ANSWER = {
    "image_data": _b64(PNG),
    "mime_type": "image/png",
    "seed": 1234567890123,
    "started_at": "2024-09-01T10:00:00.000000",
    "completed_at": "2024-09-01T10:00:01.500000",
}


MEDIA = DictMedia({"file_abc": Media(FILE_BYTES, "image/jpeg")})


def _call(operation: Operation, params: Params) -> Call:
    return Call(job_id="job_1", operation=operation, params=params, media=MEDIA)


def _url(url: str) -> ImageInput:
    return ImageInput(url=url)


FILE = ImageInput(file_id="file_abc")


@pytest.fixture
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def adapter() -> AsyncIterator[ImagePigAdapter]:
    async with httpx.AsyncClient() as client:
        yield ImagePigAdapter(
            client,
            AdapterConfig(base_url=BASE, credentials=(Credential(api_key=KEY),), timeout_s=12.5),
        )


def _sent(route: respx.Route) -> object:
    return json.loads(route.calls.last.request.content)


# -- requests as the document writes them ------------------------------------------------


async def test_default_prompt_sends_the_documented_request(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/").respond(200, json=ANSWER)

    result = await adapter.submit(
        _call(Operation.image_generate, GenerateImage(prompt="adorable pig"))
    )

    request = route.calls.last.request
    assert request.headers["Api-Key"] == KEY
    assert request.headers["Content-Type"] == "application/json"
    assert _sent(route) == {"prompt": "adorable pig"}
    assert request.extensions["timeout"]["read"] == 12.5
    assert result == Succeeded(files=[OutputFile(PNG, "image/png")], data={"seed": 1234567890123})


async def test_sdxl_sends_every_generation_attribute(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/xl").respond(200, json=ANSWER)
    params = GenerateImage(
        prompt="happy sunbathing pig, resting",
        negative_prompt="clouds",
        model="sdxl",
        seed=42,
        output_format="png",
    )

    await adapter.submit(_call(Operation.image_generate, params))

    assert _sent(route) == {
        "prompt": "happy sunbathing pig, resting",
        "negative_prompt": "clouds",
        "seed": 42,
        "format": "PNG",
    }


async def test_sd15_model_goes_to_the_default_endpoint(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/").respond(200, json=ANSWER)

    await adapter.submit(
        _call(Operation.image_generate, GenerateImage(prompt="pig", model="sd1.5"))
    )

    assert route.called


async def test_flux_maps_aspect_to_proportion(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/flux").respond(200, json=ANSWER)
    params = GenerateImage(
        prompt="a pig as a pilot of a cosmic ship, floating in a space",
        model="flux-schnell",
        aspect="portrait",
        output_format="jpeg",
    )

    await adapter.submit(_call(Operation.image_generate, params))

    assert _sent(route) == {
        "prompt": "a pig as a pilot of a cosmic ship, floating in a space",
        "proportion": "portrait",
        "format": "JPEG",
    }


async def test_cutout_sends_a_url_reference_as_image_url(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/cutout").respond(200, json=ANSWER)
    params = RemoveBackground(image=_url("https://imagepig.com/static/street.jpeg"))

    result = await adapter.submit(_call(Operation.image_remove_background, params))

    assert _sent(route) == {"image_url": "https://imagepig.com/static/street.jpeg"}
    assert isinstance(result, Succeeded)


async def test_cutout_sends_an_uploaded_file_as_base64_image_data(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/cutout").respond(200, json=ANSWER)

    await adapter.submit(
        _call(Operation.image_remove_background, RemoveBackground(image=FILE, seed=7))
    )

    assert _sent(route) == {"image_data": _b64(FILE_BYTES), "seed": 7}


async def test_upscale_sends_the_factor(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/upscale").respond(200, json=ANSWER)
    params = Upscale(
        image=_url("https://imagepig.com/static/jane-lowres.jpeg"), scale=4, output_format="png"
    )

    await adapter.submit(_call(Operation.image_upscale, params))

    assert _sent(route) == {
        "image_url": "https://imagepig.com/static/jane-lowres.jpeg",
        "upscaling_factor": 4,
        "format": "PNG",
    }


async def test_faceswap_sends_source_and_target_urls(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    answer = {k: v for k, v in ANSWER.items() if k != "seed"}  # /faceswap answers no seed
    route = upstream.post("/faceswap").respond(200, json=answer)
    params = SwapFace(
        source=_url("https://imagepig.com/static/jane.jpeg"),
        target=_url("https://imagepig.com/static/mona-lisa.jpeg"),
    )

    result = await adapter.submit(_call(Operation.image_swap_face, params))

    assert _sent(route) == {
        "source_image_url": "https://imagepig.com/static/jane.jpeg",
        "target_image_url": "https://imagepig.com/static/mona-lisa.jpeg",
    }
    assert isinstance(result, Succeeded)
    assert result.data == {}


async def test_faceswap_mixes_url_and_data_inputs(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/faceswap").respond(200, json=ANSWER)
    params = SwapFace(source=FILE, target=_url("https://example.com/t.png"), output_format="png")

    await adapter.submit(_call(Operation.image_swap_face, params))

    assert _sent(route) == {
        "source_image_data": _b64(FILE_BYTES),
        "target_image_url": "https://example.com/t.png",
        "format": "PNG",
    }


async def test_outpaint_sends_only_the_sides_that_grow(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/outpaint").respond(200, json=ANSWER)
    params = Outpaint(
        image=_url("https://imagepig.com/static/jane.jpeg"), prompt="dress", bottom=500
    )

    await adapter.submit(_call(Operation.image_outpaint, params))

    assert _sent(route) == {
        "image_url": "https://imagepig.com/static/jane.jpeg",
        "prompt": "dress",
        "bottom": 500,
    }


async def test_no_api_key_header_without_a_configured_key(upstream: respx.MockRouter) -> None:
    route = upstream.post("/").respond(401, json={"error": "Missing Api-Key header."})
    async with httpx.AsyncClient() as client:
        keyless = ImagePigAdapter(client, AdapterConfig(base_url=BASE + "/"))
        result = await keyless.submit(_call(Operation.image_generate, GenerateImage(prompt="p")))

    assert "Api-Key" not in route.calls.last.request.headers
    assert isinstance(result, Failed)
    assert result.code is ErrorCode.provider_auth_failed


# -- errors ------------------------------------------------------------------------------


def _error_body(message: str) -> dict[str, str]:
    return {
        "error": message,
        "started_at": "2024-09-01T10:00:00",
        "completed_at": "2024-09-01T10:00:00.2",
    }


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, ErrorCode.invalid_parameter, False),
        (401, ErrorCode.provider_auth_failed, True),
        (403, ErrorCode.content_blocked, False),
        (422, ErrorCode.no_face_detected, False),
        (418, ErrorCode.upstream_failed, False),
    ],
)
async def test_refusals_map_to_failed(
    upstream: respx.MockRouter,
    adapter: ImagePigAdapter,
    status: int,
    code: ErrorCode,
    retryable: bool,
) -> None:
    upstream.post("/faceswap").respond(status, json=_error_body("No face detected."))
    params = SwapFace(source=FILE, target=FILE)

    result = await adapter.submit(_call(Operation.image_swap_face, params))

    assert result == Failed(
        code=code, message="No face detected.", provider_code=str(status), retryable=retryable
    )


@pytest.mark.parametrize("retry_after", ["7", "Wed, 21 Oct 2015 07:28:00 GMT"])
async def test_rate_limit_is_retryable_after_the_header(
    upstream: respx.MockRouter, adapter: ImagePigAdapter, retry_after: str
) -> None:
    upstream.post("/").respond(
        429, json=_error_body("Too many requests."), headers={"Retry-After": retry_after}
    )

    result = await adapter.submit(_call(Operation.image_generate, GenerateImage(prompt="p")))

    assert isinstance(result, Failed)
    assert result.code is ErrorCode.provider_rate_limited
    assert result.retryable
    assert result.retry_after_s == (7.0 if retry_after == "7" else 0.0)  # a past date: now


@pytest.mark.parametrize("status", [402, 500, 502, 503, 504, 599])
async def test_service_failures_raise_provider_unavailable(
    upstream: respx.MockRouter, adapter: ImagePigAdapter, status: int
) -> None:
    upstream.post("/").respond(status, text="<html>oops</html>")

    with pytest.raises(ProviderUnavailable) as raised:
        await adapter.submit(_call(Operation.image_generate, GenerateImage(prompt="p")))

    assert raised.value.code is ErrorCode.provider_unavailable
    assert str(status) in raised.value.detail


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        json.dumps({"mime_type": "image/png"}).encode(),
        json.dumps({"image_data": "not base64 !!", "mime_type": "image/png"}).encode(),
        json.dumps(
            {"image_url": "https://files.imagepig.com/x.png", "mime_type": "image/png"}
        ).encode(),
    ],
    ids=["html", "no-image", "bad-base64", "url-not-asked-for"],
)
async def test_unreadable_success_body_raises_provider_unavailable(
    upstream: respx.MockRouter, adapter: ImagePigAdapter, body: bytes
) -> None:
    upstream.post("/cutout").respond(200, content=body)

    with pytest.raises(ProviderUnavailable):
        await adapter.submit(_call(Operation.image_remove_background, RemoveBackground(image=FILE)))


async def test_timeout_raises_upstream_timeout(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    upstream.post("/flux").mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(UpstreamTimeout):
        await adapter.submit(
            _call(Operation.image_generate, GenerateImage(prompt="p", model="flux-schnell"))
        )


async def test_refused_connection_raises_provider_unavailable(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    upstream.post("/").mock(side_effect=httpx.ConnectError("refused"))

    with pytest.raises(ProviderUnavailable):
        await adapter.submit(_call(Operation.image_generate, GenerateImage(prompt="p")))


# -- bindings ----------------------------------------------------------------------------

GENERATE = ImagePigAdapter.bindings[Operation.image_generate]


@pytest.mark.parametrize(
    ("params", "refused"),
    [
        (GenerateImage(prompt="p", aspect="wide"), "aspect"),
        (GenerateImage(prompt="p", model="sdxl", aspect="wide"), "aspect"),
        (GenerateImage(prompt="p", model="flux-schnell", aspect="wide"), None),
        (GenerateImage(prompt="p", model="flux-schnell", negative_prompt="x"), "negative_prompt"),
        (GenerateImage(prompt="p", model="sdxl", negative_prompt="x"), None),
        (GenerateImage(prompt="p", width=512), "width"),
        (GenerateImage(prompt="p", height=512), "height"),
        (GenerateImage(prompt="p", output_format="webp"), "output_format"),
        (GenerateImage(prompt="p", output_format="png", seed=3), None),
    ],
)
def test_generate_binding(params: GenerateImage, refused: str | None) -> None:
    assert GENERATE.refuses(params) == refused


@pytest.mark.parametrize(
    ("operation", "params", "refused"),
    [
        (Operation.image_upscale, Upscale(image=FILE, scale=1), "scale"),
        (Operation.image_upscale, Upscale(image=FILE, scale=8), None),
        (Operation.image_upscale, Upscale(image=FILE, output_format="webp"), "output_format"),
        (Operation.image_outpaint, Outpaint(image=FILE, prompt="p", left=1024), None),
        (Operation.image_outpaint, Outpaint(image=FILE, prompt="p", left=1025), "left"),
        (
            Operation.image_swap_face,
            SwapFace(source=FILE, target=FILE, output_format="webp"),
            "output_format",
        ),
        (Operation.image_remove_background, RemoveBackground(image=FILE, seed=1), None),
    ],
)
def test_image_bindings(operation: Operation, params: Params, refused: str | None) -> None:
    assert ImagePigAdapter.bindings[operation].refuses(params) == refused


def test_prices_follow_the_document() -> None:
    prices = {op.value: b.price for op, b in ImagePigAdapter.bindings.items()}
    assert prices == {
        "image.generate": 2,  # a /flux image counts as two calls; the binding covers it
        "image.remove_background": 1,
        "image.upscale": 1,
        "image.swap_face": 1,
        "image.outpaint": 1,
    }
