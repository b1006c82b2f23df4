"""The Image Pig adapter against the request and response bodies of its document (respx)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Literal

import httpx
import pytest
import respx

from app.domain.errors import ErrorCode, ProviderUnavailable, UpstreamTimeout
from app.domain.media import ImageInput
from app.domain.operations import (
    PARAMS,
    GenerateImage,
    Operation,
    Outpaint,
    Params,
    RemoveBackground,
    SwapFace,
    Upscale,
)
from app.providers import imagepig
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


@pytest.mark.parametrize(
    ("quality", "model", "path"),
    [
        ("fast", None, "/"),
        ("standard", None, "/xl"),
        ("high", None, "/flux"),
        ("high", "sdxl", "/xl"),  # an explicit model wins over the hint
        ("fast", "flux-schnell", "/flux"),
    ],
)
async def test_quality_hint_picks_the_endpoint_when_no_model_is_given(
    upstream: respx.MockRouter,
    adapter: ImagePigAdapter,
    quality: Literal["fast", "standard", "high"],
    model: Literal["sdxl", "flux-schnell"] | None,
    path: str,
) -> None:
    route = upstream.post(path).respond(200, json=ANSWER)
    params = GenerateImage(prompt="pig", quality=quality, model=model)

    await adapter.submit(_call(Operation.image_generate, params))

    assert _sent(route) == {"prompt": "pig"}  # neither hint nor model goes on the wire


async def test_flux_sends_every_flux_attribute(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/flux").respond(200, json=ANSWER)
    params = GenerateImage(
        prompt="vesmírný kapitán prase",
        quality="high",
        aspect="vertical",
        language="cs",
        seed=2**64 - 1,
        output_format="png",
    )

    await adapter.submit(_call(Operation.image_generate, params))

    assert _sent(route) == {
        "prompt": "vesmírný kapitán prase",
        "proportion": "vertical",
        "language": "cs",
        "seed": 2**64 - 1,
        "format": "PNG",
    }


@pytest.mark.parametrize(("language", "sent"), [("de", {"language": "de"}), ("en", {})])
async def test_language_is_sent_unless_english(
    upstream: respx.MockRouter, adapter: ImagePigAdapter, language: str, sent: dict[str, str]
) -> None:
    route = upstream.post("/").respond(200, json=ANSWER)

    await adapter.submit(
        _call(Operation.image_generate, GenerateImage(prompt="Schwein", language=language))
    )

    assert _sent(route) == {"prompt": "Schwein"} | sent


async def test_outpaint_sends_every_documented_attribute(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/outpaint").respond(200, json=ANSWER)
    params = Outpaint(
        image=FILE,
        prompt="šaty",
        negative_prompt="kalhoty",
        language="cs",
        top=1,
        right=2,
        bottom=1024,
        left=4,
        seed=0,
        output_format="jpeg",
    )

    await adapter.submit(_call(Operation.image_outpaint, params))

    assert _sent(route) == {
        "image_data": _b64(FILE_BYTES),
        "prompt": "šaty",
        "negative_prompt": "kalhoty",
        "language": "cs",
        "top": 1,
        "right": 2,
        "bottom": 1024,
        "left": 4,
        "seed": 0,
        "format": "JPEG",
    }


async def test_swap_face_sends_nothing_for_enhance_face(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    route = upstream.post("/faceswap").respond(200, json=ANSWER)

    await adapter.submit(
        _call(Operation.image_swap_face, SwapFace(source=FILE, target=FILE, enhance_face=True))
    )

    assert _sent(route) == {
        "source_image_data": _b64(FILE_BYTES),
        "target_image_data": _b64(FILE_BYTES),
    }


# -- stored images (``image_url`` answers) ----------------------------------------------

STORED = "https://storage.imagepig.com/2024/09/01/abc.png"
URL_ANSWER = {k: v for k, v in ANSWER.items() if k != "image_data"} | {"image_url": STORED}


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imagepig, "DOWNLOAD_PAUSE_S", 0.0)


async def test_an_image_url_answer_is_downloaded_without_the_key(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    upstream.post("/cutout").respond(200, json=URL_ANSWER)
    stored = upstream.get(STORED).respond(200, content=PNG, headers={"Content-Type": "image/png"})

    result = await adapter.submit(
        _call(Operation.image_remove_background, RemoveBackground(image=FILE))
    )

    assert result == Succeeded(files=[OutputFile(PNG, "image/png")], data={"seed": 1234567890123})
    assert "Api-Key" not in stored.calls.last.request.headers
    assert stored.calls.last.request.extensions["timeout"]["read"] == 12.5


async def test_image_data_wins_when_both_are_answered(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    upstream.post("/").respond(200, json=ANSWER | {"image_url": STORED})  # STORED is not mocked

    result = await adapter.submit(_call(Operation.image_generate, GenerateImage(prompt="p")))

    assert isinstance(result, Succeeded)
    assert result.files == [OutputFile(PNG, "image/png")]


async def test_a_stored_image_that_is_not_there_yet_is_retried(
    upstream: respx.MockRouter, adapter: ImagePigAdapter, no_pause: None
) -> None:
    upstream.post("/").respond(200, json=URL_ANSWER)
    stored = upstream.get(STORED)
    stored.side_effect = [
        httpx.Response(404),
        httpx.Response(404),
        httpx.Response(200, content=PNG),
    ]

    result = await adapter.submit(_call(Operation.image_generate, GenerateImage(prompt="p")))

    assert isinstance(result, Succeeded)
    assert result.files[0].content == PNG
    assert stored.call_count == 3


async def test_a_stored_image_that_never_appears_raises_provider_unavailable(
    upstream: respx.MockRouter, adapter: ImagePigAdapter, no_pause: None
) -> None:
    upstream.post("/").respond(200, json=URL_ANSWER)
    stored = upstream.get(STORED).respond(404)

    with pytest.raises(ProviderUnavailable) as raised:
        await adapter.submit(_call(Operation.image_generate, GenerateImage(prompt="p")))

    assert stored.call_count == imagepig.DOWNLOAD_ATTEMPTS
    assert "404" in raised.value.detail


@pytest.mark.parametrize("status", [403, 500])
async def test_a_failing_stored_image_raises_at_once(
    upstream: respx.MockRouter, adapter: ImagePigAdapter, status: int
) -> None:
    upstream.post("/").respond(200, json=URL_ANSWER)
    stored = upstream.get(STORED).respond(status)

    with pytest.raises(ProviderUnavailable):
        await adapter.submit(_call(Operation.image_generate, GenerateImage(prompt="p")))

    assert stored.call_count == 1


async def test_a_stored_image_that_does_not_arrive_in_time_raises_upstream_timeout(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    upstream.post("/").respond(200, json=URL_ANSWER)
    upstream.get(STORED).mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(UpstreamTimeout):
        await adapter.submit(_call(Operation.image_generate, GenerateImage(prompt="p")))


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
        # the document says nothing of 402 or 403 (no moderation): kept, not read
        (402, ErrorCode.upstream_failed, False),
        (403, ErrorCode.upstream_failed, False),
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


async def test_documented_no_face_422_on_every_image_input(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    """The document: "HTTP status code 422 (Unprocessable Content) is returned if no face is
    detected" (source and target alike); the body is the documented error body."""
    upstream.post("/faceswap").respond(422, json=_error_body("No face detected in target."))
    params = SwapFace(source=_url("https://example.com/s.png"), target=FILE)

    result = await adapter.submit(_call(Operation.image_swap_face, params))

    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.no_face_detected, False)
    assert (result.message, result.provider_code) == ("No face detected in target.", "422")


async def test_a_422_validation_list_is_a_refused_request_not_a_missing_face(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    detail = {
        "detail": [
            {"loc": ["body", "seed"], "msg": "Input should be greater than or equal to 0"},
            {"loc": ["body", "format"], "msg": "Input should be 'JPEG' or 'PNG'"},
        ]
    }
    upstream.post("/").respond(422, json=detail)

    result = await adapter.submit(_call(Operation.image_generate, GenerateImage(prompt="p")))

    assert result == Failed(
        code=ErrorCode.invalid_parameter,
        message="Input should be greater than or equal to 0; Input should be 'JPEG' or 'PNG'",
        provider_code="422",
    )


async def test_a_422_without_a_readable_body_still_means_no_face(
    upstream: respx.MockRouter, adapter: ImagePigAdapter
) -> None:
    upstream.post("/faceswap").respond(422, text="Unprocessable Content")

    result = await adapter.submit(
        _call(Operation.image_swap_face, SwapFace(source=FILE, target=FILE))
    )

    assert result == Failed(
        code=ErrorCode.no_face_detected, message="HTTP 422", provider_code="422"
    )


def test_every_status_in_the_table_has_a_test_here() -> None:
    statuses = {status for status, _ in imagepig.ERRORS}
    tested = {400, 401, 422, 429}  # the tests in this section (5xx: the server-error test)
    assert statuses == tested


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


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
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
        json.dumps({"image_data": _b64(PNG)}).encode(),
        json.dumps(["image_data"]).encode(),
    ],
    ids=["html", "no-image", "bad-base64", "no-mime-type", "not-an-object"],
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


@pytest.mark.parametrize(
    ("params", "refused"),
    [
        (GenerateImage(prompt="p", quality="high", aspect="square"), None),
        (GenerateImage(prompt="p", quality="standard", aspect="square"), "aspect"),
        (GenerateImage(prompt="p", quality="high", model="sdxl", aspect="square"), "aspect"),
        (GenerateImage(prompt="p", quality="high", negative_prompt="x"), "negative_prompt"),
        (GenerateImage(prompt="p", quality="fast", negative_prompt="x"), None),
        (GenerateImage(prompt="p", language="zh"), None),
        (GenerateImage(prompt="p", language="en"), None),
        (GenerateImage(prompt="p", language="xx"), "language"),
        (GenerateImage(prompt="p", language="pt-BR"), "language"),
        (GenerateImage(prompt="p", language="DE"), "language"),
        (GenerateImage(prompt="p", style_id="anime"), "style_id"),
    ],
)
def test_generate_binding_quality_and_language(params: GenerateImage, refused: str | None) -> None:
    assert GENERATE.refuses(params) == refused


@pytest.mark.parametrize(
    ("params", "refused"),
    [
        (SwapFace(source=FILE, target=FILE, enhance_face=True), None),
        (SwapFace(source=FILE, target=FILE, enhance_face=False), "enhance_face"),
        (SwapFace(source=FILE, target=FILE, upscale=True), "upscale"),
        (SwapFace(source=FILE, target=FILE, restore_weight=0.5), "restore_weight"),
        (SwapFace(source=FILE, target=FILE, output_format="jpeg"), None),
    ],
)
def test_swap_face_binding(params: SwapFace, refused: str | None) -> None:
    assert ImagePigAdapter.bindings[Operation.image_swap_face].refuses(params) == refused


@pytest.mark.parametrize(("language", "refused"), [("uk", None), ("en", None), ("xx", "language")])
def test_outpaint_binding_languages(language: str, refused: str | None) -> None:
    params = Outpaint(image=FILE, prompt="p", language=language)

    assert ImagePigAdapter.bindings[Operation.image_outpaint].refuses(params) == refused


DOCUMENTED: dict[Operation, set[str]] = {
    # / and /xl: prompt, negative_prompt, language, format, seed; /flux: proportion too
    Operation.image_generate: {
        "prompt", "negative_prompt", "language", "output_format", "seed", "aspect",
        "model", "quality",  # choose the endpoint
    },
    # /cutout: image_url | image_data, seed
    Operation.image_remove_background: {"image", "seed"},
    # /upscale: image_url | image_data, upscaling_factor, format, seed
    Operation.image_upscale: {"image", "scale", "output_format", "seed"},
    # /faceswap: source_image_*, target_image_*, format (GFPGAN always enhances)
    Operation.image_swap_face: {"source", "target", "output_format", "enhance_face"},
    # /outpaint: image_*, prompt, negative_prompt, language, the four sides, format, seed
    Operation.image_outpaint: {
        "image", "prompt", "negative_prompt", "language", "top", "right", "bottom", "left",
        "output_format", "seed",
    },
}  # fmt: skip


@pytest.mark.parametrize("operation", list(DOCUMENTED))
def test_each_binding_honours_exactly_the_documented_attributes(operation: Operation) -> None:
    binding = ImagePigAdapter.bindings[operation]
    fields = set(PARAMS[operation].model_fields)

    assert binding.parameters == DOCUMENTED[operation]
    assert binding.parameters <= fields  # every honoured name is a canonical parameter


def test_prices_follow_the_document() -> None:
    prices = {op.value: b.price for op, b in ImagePigAdapter.bindings.items()}
    assert prices == {
        "image.generate": 2,  # a /flux image counts as two calls; the binding covers it
        "image.remove_background": 1,
        "image.upscale": 1,
        "image.swap_face": 1,
        "image.outpaint": 1,
    }
    assert ImagePigAdapter.limits == {}  # the document states no rate or concurrency limit
