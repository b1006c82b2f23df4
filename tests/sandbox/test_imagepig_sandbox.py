"""The Image Pig emulator over ASGI: auth, documented sizes, errors, faults, counters, and the
adapter talking to it."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Iterator
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
    Outpaint,
    Params,
    RemoveBackground,
    SwapFace,
    Upscale,
)
from app.providers.base import AdapterConfig, Call, Credential, Failed, Media, Succeeded
from app.providers.imagepig import ImagePigAdapter
from app.sandbox import images
from app.sandbox.credentials import IMAGEPIG_API_KEY
from app.sandbox.timing import SandboxTiming
from tests.utils.media_source import DictMedia
from tests.utils.sandbox import CONTROL, sandbox_app

ROOT = "/_sandbox/imagepig"
HEADERS = {"Api-Key": IMAGEPIG_API_KEY}
PHOTO = images.render(300, 200, "png", seed=5)
"""A picture with a face, as the sandbox reads it (not one uniform colour)."""


def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def _uniform(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 160)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
async def sandbox() -> AsyncIterator[httpx.AsyncClient]:
    app = sandbox_app(SandboxTiming())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


@pytest.fixture
def files() -> Iterator[respx.MockRouter]:
    """Where ``image_url`` inputs live; the emulator downloads them with httpx."""
    with respx.mock(base_url="http://files.test", assert_all_called=False) as router:
        router.get("/photo.png").respond(200, content=PHOTO)
        router.get("/blank.png").respond(200, content=_uniform())
        router.get("/gone.png").respond(404)
        yield router


async def _post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], key: str | None = IMAGEPIG_API_KEY
) -> httpx.Response:
    headers = {"Api-Key": key} if key is not None else {}
    return await client.post(f"{ROOT}{path}", json=body, headers=headers)


def _image(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    body = response.json()
    image = Image.open(io.BytesIO(base64.b64decode(body["image_data"])))
    assert body["mime_type"] == Image.MIME[image.format or ""]
    return image


def _assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "started_at", "completed_at"}
    assert body["started_at"] <= body["completed_at"]
    message: str = body["error"]
    return message


async def _arm(client: httpx.AsyncClient, fault: str) -> None:
    response = await client.post(
        "/_sandbox/faults",
        json={"provider": "imagepig", "fault": fault, "count": 1},
        headers=CONTROL,
    )
    assert response.status_code == 204


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    stats: dict[str, Any] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()[
        "imagepig"
    ]
    return stats


def _counters(stats: dict[str, Any]) -> dict[str, Any]:
    """The counters this emulator keeps (the sandbox may report more)."""
    return {k: stats[k] for k in ("requests", "submissions", "faults_served", "by_endpoint")}


# -- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
async def test_missing_or_wrong_key_is_401(sandbox: httpx.AsyncClient, key: str | None) -> None:
    response = await _post(sandbox, "/", {"prompt": "adorable pig"}, key=key)

    _assert_error(response, 401)
    assert _counters(await _stats(sandbox)) == {
        "requests": 1,
        "submissions": 0,
        "faults_served": 0,
        "by_endpoint": {"/": 1},
    }


async def test_refusals_come_before_faults(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "http_500")

    _assert_error(await _post(sandbox, "/", {"prompt": "p"}, key="wrong"), 401)
    _assert_error(await _post(sandbox, "/", {"prompt": "p"}), 500)


# -- text to image -----------------------------------------------------------------------


async def test_default_endpoint_answers_the_documented_body(sandbox: httpx.AsyncClient) -> None:
    response = await _post(sandbox, "/", {"prompt": "adorable pig"})

    image = _image(response)
    body = response.json()
    assert set(body) == {"image_data", "mime_type", "seed", "started_at", "completed_at"}
    assert (image.format, image.size) == ("JPEG", (512, 512))
    assert isinstance(body["seed"], int) and body["seed"] >= 0


async def test_xl_is_1024_and_format_png(sandbox: httpx.AsyncClient) -> None:
    response = await _post(
        sandbox, "/xl", {"positive_prompt": "sunbathing pig", "format": "PNG", "language": "cs"}
    )

    image = _image(response)
    assert (image.format, image.size) == ("PNG", (1024, 1024))


async def test_a_seed_gives_the_same_image_and_is_echoed(sandbox: httpx.AsyncClient) -> None:
    body = {"prompt": "pig", "negative_prompt": "wolf", "seed": 2**64 - 1}
    first = await _post(sandbox, "/", body)
    second = await _post(sandbox, "/", body)
    other = await _post(sandbox, "/", body | {"seed": 2**64 - 2})

    assert first.json()["seed"] == 2**64 - 1
    assert first.json()["image_data"] == second.json()["image_data"]
    assert first.json()["image_data"] != other.json()["image_data"]


@pytest.mark.parametrize(
    ("proportion", "size"),
    [
        (None, (1216, 832)),
        ("landscape", (1216, 832)),
        ("portrait", (832, 1216)),
        ("square", (1024, 1024)),
        ("wide", (1344, 768)),
        ("vertical", (576, 1024)),
    ],
)
async def test_flux_sizes_follow_proportion(
    sandbox: httpx.AsyncClient, proportion: str | None, size: tuple[int, int]
) -> None:
    body = {"prompt": "space captain pig"} | ({"proportion": proportion} if proportion else {})

    assert _image(await _post(sandbox, "/flux", body)).size == size


@pytest.mark.parametrize("path", ["/", "/xl", "/flux", "/outpaint"])
async def test_every_documented_language_is_accepted_where_prompts_are(
    sandbox: httpx.AsyncClient, path: str
) -> None:
    image = {"image_data": _b64(PHOTO)} if path == "/outpaint" else {}
    for language in ("ar", "ja", "nb", "zh"):
        body = image | {"positive_prompt": "prase", "language": language}
        assert _image(await _post(sandbox, path, body))
    english = await _post(sandbox, path, image | {"prompt": "pig", "language": "en"})
    assert "language" in _assert_error(english, 400)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/flux", {"prompt": "p", "negative_prompt": "no such thing for flux"}),
        ("/flux", {"prompt": "p", "proportion": "panorama"}),
        ("/", {"prompt": "p", "format": "WEBP"}),
        ("/", {"prompt": "p", "language": "xx"}),
        ("/", {"prompt": "p", "seed": -1}),
        ("/", {"prompt": "p", "seed": 2**64}),
        ("/", {"prompt": "p", "width": 640}),
        ("/", {"prompt": "p", "storage_days": -1}),
        ("/upscale", {"image_data": _b64(PHOTO), "upscaling_factor": 3}),
        ("/upscale", {"image_data": _b64(PHOTO), "upscaling_factor": "2"}),
        ("/outpaint", {"image_data": _b64(PHOTO), "left": 1025}),
        ("/outpaint", {"image_data": _b64(PHOTO), "top": -1}),
        ("/outpaint", {"image_data": _b64(PHOTO), "proportion": "wide"}),
        ("/outpaint", {"image_data": _b64(PHOTO), "format": "jpeg"}),
        ("/xl", {"prompt": "p", "proportion": "square"}),
        (
            "/faceswap",
            {"source_image_data": _b64(PHOTO), "target_image_data": _b64(PHOTO), "seed": 1},
        ),
        ("/upscale", {"image_data": _b64(PHOTO), "upscaling_factor": 2.0}),
        ("/cutout", {"image_data": _b64(PHOTO), "format": "PNG"}),
        ("/cutout", {}),
        ("/cutout", {"image_data": _b64(PHOTO), "image_url": "http://files.test/photo.png"}),
        ("/cutout", {"image_url": "ftp://files.test/photo.png"}),
        ("/cutout", {"image_data": "%%% not base64 %%%"}),
        ("/cutout", {"image_data": _b64(b"these bytes are no picture")}),
        ("/faceswap", {"source_image_data": _b64(PHOTO)}),
        ("/faceswap", {"source_image_data": _b64(PHOTO), "target_image_data": "@@"}),
    ],
)
async def test_invalid_requests_are_400(
    sandbox: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    assert _assert_error(await _post(sandbox, path, body), 400)
    assert (await _stats(sandbox))["submissions"] == 0


async def test_body_must_be_json(sandbox: httpx.AsyncClient) -> None:
    not_json = await sandbox.post(
        f"{ROOT}/", content=b"prompt=pig", headers=HEADERS | {"Content-Type": "application/json"}
    )
    form = await sandbox.post(f"{ROOT}/", data={"prompt": "pig"}, headers=HEADERS)

    _assert_error(not_json, 400)
    assert "Content-Type" in _assert_error(form, 400)


async def test_storage_days_answers_a_url_to_the_stored_image(sandbox: httpx.AsyncClient) -> None:
    response = await _post(sandbox, "/", {"prompt": "pig", "format": "PNG", "storage_days": 3})

    body = response.json()
    assert response.status_code == 200
    assert "image_data" not in body
    stored = await sandbox.get(body["image_url"])
    assert stored.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(stored.content)).size == (512, 512)


@pytest.mark.parametrize(
    ("path", "body", "mime_type"),
    [
        ("/flux", {"prompt": "pig", "proportion": "wide"}, "image/jpeg"),
        ("/cutout", {"image_data": _b64(PHOTO)}, "image/png"),
        ("/upscale", {"image_data": _b64(PHOTO), "upscaling_factor": 4}, "image/jpeg"),
        ("/faceswap", {"source_image_data": _b64(PHOTO), "target_image_data": _b64(PHOTO),
                       "format": "PNG"}, "image/png"),
        ("/outpaint", {"image_data": _b64(PHOTO), "prompt": "sky", "right": 20}, "image/jpeg"),
    ],
)  # fmt: skip
async def test_storage_days_works_on_every_endpoint(
    sandbox: httpx.AsyncClient, path: str, body: dict[str, Any], mime_type: str
) -> None:
    response = await _post(sandbox, path, body | {"storage_days": 1})

    answer = response.json()
    assert response.status_code == 200, answer
    assert "image_data" not in answer and answer["mime_type"] == mime_type
    stored = await sandbox.get(answer["image_url"])
    assert stored.headers["Content-Type"] == mime_type
    assert Image.MIME[Image.open(io.BytesIO(stored.content)).format or ""] == mime_type


async def test_an_unknown_stored_file_is_404(sandbox: httpx.AsyncClient) -> None:
    assert (await sandbox.get(f"{ROOT}/storage/nothing.png")).status_code == 404


# -- image to image ----------------------------------------------------------------------


async def test_cutout_is_a_png_with_alpha_at_the_input_size(sandbox: httpx.AsyncClient) -> None:
    response = await _post(sandbox, "/cutout", {"image_data": _b64(PHOTO), "seed": 9})

    image = _image(response)
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (300, 200))
    assert response.json()["seed"] == 9


async def test_cutout_downloads_image_url(
    sandbox: httpx.AsyncClient, files: respx.MockRouter
) -> None:
    response = await _post(sandbox, "/cutout", {"image_url": "http://files.test/photo.png"})

    assert _image(response).size == (300, 200)
    assert files.routes[0].call_count == 1


async def test_an_image_url_that_cannot_be_downloaded_is_400(
    sandbox: httpx.AsyncClient, files: respx.MockRouter
) -> None:
    response = await _post(sandbox, "/cutout", {"image_url": "http://files.test/gone.png"})

    assert "download" in _assert_error(response, 400)


@pytest.mark.parametrize(
    ("factor", "size"), [(None, (600, 400)), (2, (600, 400)), (4, (1200, 800)), (8, (2400, 1600))]
)
async def test_upscale_multiplies_the_input_size(
    sandbox: httpx.AsyncClient, factor: int | None, size: tuple[int, int]
) -> None:
    body = {"image_data": _b64(PHOTO)} | ({"upscaling_factor": factor} if factor else {})

    image = _image(await _post(sandbox, "/upscale", body))
    assert (image.format, image.size) == ("JPEG", size)


async def test_upscale_output_stays_within_8096_px(sandbox: httpx.AsyncClient) -> None:
    strip = images.render(1100, 10, "png")
    body = {"image_data": _b64(strip), "upscaling_factor": 8, "format": "PNG"}

    assert _image(await _post(sandbox, "/upscale", body)).size == (8096, 74)


async def test_outpaint_adds_the_sides_to_the_downscaled_input(
    sandbox: httpx.AsyncClient,
) -> None:
    large = images.render(2048, 1024, "jpeg")
    body = {"image_data": _b64(large), "prompt": "dress", "bottom": 500, "left": 10, "top": 1}

    assert _image(await _post(sandbox, "/outpaint", body)).size == (1034, 1013)


async def test_outpaint_honours_format_and_seed(sandbox: httpx.AsyncClient) -> None:
    body = {"image_data": _b64(PHOTO), "prompt": "sky", "top": 100, "format": "PNG", "seed": 5}
    first = await _post(sandbox, "/outpaint", body)
    again = await _post(sandbox, "/outpaint", body)
    other = await _post(sandbox, "/outpaint", body | {"seed": 6})

    image = _image(first)
    assert (image.format, image.size) == ("PNG", (300, 300))
    assert first.json()["seed"] == 5
    assert first.json()["image_data"] == again.json()["image_data"]
    assert first.json()["image_data"] != other.json()["image_data"]


async def test_upscale_honours_format_and_echoes_the_seed(sandbox: httpx.AsyncClient) -> None:
    body = {"image_data": _b64(PHOTO), "upscaling_factor": 2, "format": "PNG", "seed": 77}
    response = await _post(sandbox, "/upscale", body)

    assert _image(response).format == "PNG"
    assert response.json()["seed"] == 77


async def test_faceswap_answers_the_target_size_without_seed(
    sandbox: httpx.AsyncClient, files: respx.MockRouter
) -> None:
    target = images.render(2000, 1000, "png", seed=3)
    body = {"source_image_url": "http://files.test/photo.png", "target_image_data": _b64(target)}

    response = await _post(sandbox, "/faceswap", body | {"format": "PNG"})

    assert _image(response).size == (1024, 512)
    assert "seed" not in response.json()


@pytest.mark.parametrize("blank", ["source", "target"])
async def test_faceswap_without_a_face_is_422(
    sandbox: httpx.AsyncClient, files: respx.MockRouter, blank: str
) -> None:
    pictures = {"source": _b64(PHOTO), "target": _b64(PHOTO)} | {blank: _b64(_uniform())}
    body = {f"{role}_image_data": data for role, data in pictures.items()}

    assert blank in _assert_error(await _post(sandbox, "/faceswap", body), 422)
    assert (await _stats(sandbox))["submissions"] == 0


async def test_faceswap_reads_a_blank_url_as_no_face(
    sandbox: httpx.AsyncClient, files: respx.MockRouter
) -> None:
    body = {"source_image_data": _b64(PHOTO), "target_image_url": "http://files.test/blank.png"}

    _assert_error(await _post(sandbox, "/faceswap", body), 422)


# -- faults and counters -----------------------------------------------------------------

VALID: dict[str, dict[str, Any]] = {
    "/": {"prompt": "pig"},
    "/xl": {"prompt": "pig"},
    "/flux": {"prompt": "pig", "proportion": "square"},
    "/faceswap": {"source_image_data": _b64(PHOTO), "target_image_data": _b64(PHOTO)},
    "/cutout": {"image_data": _b64(PHOTO)},
    "/upscale": {"image_data": _b64(PHOTO)},
    "/outpaint": {"image_data": _b64(PHOTO), "prompt": "sky", "left": 8},
}
"""A request every endpoint serves."""


@pytest.mark.parametrize(
    ("fault", "status"),
    [("http_500", 500), ("rate_limit", 429), ("no_face", 422), ("blocked", 403),
     ("no_credits", 402)],
)  # fmt: skip
@pytest.mark.parametrize("path", list(VALID))
async def test_faults_answer_the_error_body(
    sandbox: httpx.AsyncClient, fault: str, status: int, path: str
) -> None:
    await _arm(sandbox, fault)

    response = await _post(sandbox, path, VALID[path])

    _assert_error(response, status)
    assert ("Retry-After" in response.headers) == (fault == "rate_limit")
    assert _image(await _post(sandbox, path, VALID[path]))  # count was 1
    stats = await _stats(sandbox)
    assert (stats["faults_served"], stats["submissions"]) == (1, 1)


@pytest.mark.parametrize("path", list(VALID))
async def test_garbage_fault_is_200_and_not_json(sandbox: httpx.AsyncClient, path: str) -> None:
    await _arm(sandbox, "garbage")

    response = await _post(sandbox, path, VALID[path])

    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


async def test_timeout_fault_never_answers(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "timeout")

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_post(sandbox, "/", {"prompt": "pig"}), timeout=0.2)
    assert _image(await _post(sandbox, "/", {"prompt": "pig"}))


async def test_latency_delays_every_answer() -> None:
    app = sandbox_app(SandboxTiming(latency_s=0.3))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_post(client, "/", {"prompt": "pig"}), timeout=0.1)
        _image(await asyncio.wait_for(_post(client, "/", {"prompt": "pig"}), timeout=5))


async def test_stats_count_requests_per_endpoint_and_billed_submissions(
    sandbox: httpx.AsyncClient,
) -> None:
    await _post(sandbox, "/", {"prompt": "a"})
    await _post(sandbox, "/xl", {"prompt": "b"})
    await _post(sandbox, "/xl", {"prompt": "b", "format": "GIF"})
    await _post(sandbox, "/cutout", {"image_data": _b64(PHOTO)})
    await _post(sandbox, "/faceswap", {"source_image_data": _b64(_uniform()),
                                       "target_image_data": _b64(PHOTO)})  # fmt: skip

    assert _counters(await _stats(sandbox)) == {
        "requests": 5,
        "submissions": 3,
        "faults_served": 0,
        "by_endpoint": {"/": 1, "/xl": 2, "/cutout": 1, "/faceswap": 1},
    }


# -- the adapter against the emulator ----------------------------------------------------


MEDIA = DictMedia(
    {"file_photo": Media(PHOTO, "image/png"), "file_blank": Media(_uniform(), "image/png")}
)


def _call(operation: Operation, params: Params) -> Call:
    return Call(job_id="job_1", operation=operation, params=params, media=MEDIA)


def _adapter(client: httpx.AsyncClient, key: str = IMAGEPIG_API_KEY) -> ImagePigAdapter:
    return ImagePigAdapter(
        client,
        AdapterConfig(base_url=f"http://sandbox{ROOT}", credentials=(Credential(api_key=key),)),
    )


def _output(result: object) -> Image.Image:
    assert isinstance(result, Succeeded), result
    (file,) = result.files
    image = Image.open(io.BytesIO(file.content))
    assert file.content_type == Image.MIME[image.format or ""]
    return image


async def test_adapter_and_emulator_agree(
    sandbox: httpx.AsyncClient, files: respx.MockRouter
) -> None:
    adapter = _adapter(sandbox)
    photo, blank = ImageInput(file_id="file_photo"), ImageInput(file_id="file_blank")
    by_url = ImageInput(url="http://files.test/photo.png")

    flux = await adapter.submit(
        _call(
            Operation.image_generate,
            GenerateImage(prompt="pig", model="flux-schnell", aspect="wide", seed=11),
        )
    )
    assert _output(flux).size == (1344, 768)
    assert isinstance(flux, Succeeded) and flux.data == {"seed": 11}

    sdxl = GenerateImage(prompt="pig", negative_prompt="x", model="sdxl", output_format="png")
    assert _output(await adapter.submit(_call(Operation.image_generate, sdxl))).format == "PNG"

    cutout = await adapter.submit(
        _call(Operation.image_remove_background, RemoveBackground(image=photo))
    )
    assert (_output(cutout).mode, _output(cutout).size) == ("RGBA", (300, 200))

    upscale = await adapter.submit(_call(Operation.image_upscale, Upscale(image=by_url, scale=4)))
    assert _output(upscale).size == (1200, 800)

    swap = await adapter.submit(
        _call(Operation.image_swap_face, SwapFace(source=photo, target=by_url))
    )
    assert _output(swap).size == (300, 200)

    no_face = await adapter.submit(
        _call(Operation.image_swap_face, SwapFace(source=blank, target=photo))
    )
    assert isinstance(no_face, Failed)
    assert (no_face.code, no_face.retryable) == (ErrorCode.no_face_detected, False)

    assert (await _stats(sandbox))["submissions"] == 5


async def test_adapter_serves_outpaint_quality_and_language(sandbox: httpx.AsyncClient) -> None:
    adapter = _adapter(sandbox)
    photo = ImageInput(file_id="file_photo")

    outpaint = Outpaint(
        image=photo,
        prompt="obloha",
        negative_prompt="mraky",
        language="cs",
        top=100,
        left=50,
        seed=3,
        output_format="png",
    )
    result = await adapter.submit(_call(Operation.image_outpaint, outpaint))
    assert (_output(result).format, _output(result).size) == ("PNG", (350, 300))
    assert isinstance(result, Succeeded) and result.data == {"seed": 3}

    for quality, size in (("fast", (512, 512)), ("standard", (1024, 1024)),
                          ("high", (1216, 832))):  # fmt: skip
        params = GenerateImage(prompt="Schwein", quality=quality, language="de")
        assert _output(await adapter.submit(_call(Operation.image_generate, params))).size == size

    english = GenerateImage(prompt="pig", language="en", model="flux-schnell", aspect="vertical")
    assert _output(await adapter.submit(_call(Operation.image_generate, english))).size == (
        576,
        1024,
    )
    upscale = Upscale(image=photo, scale=8, output_format="png", seed=1)
    assert _output(await adapter.submit(_call(Operation.image_upscale, upscale))).size == (
        2400,
        1600,
    )
    assert (await _stats(sandbox))["submissions"] == 6


class _PaidStorage(httpx.AsyncBaseTransport):
    """Adds ``storage_days`` to every POST, so the emulator answers ``image_url``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.downloads = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            headers = [(k, v) for k, v in request.headers.items() if k != "content-length"]
            body = json.loads(request.content) | {"storage_days": 1}
            request = httpx.Request("POST", request.url, headers=headers, json=body)
        else:
            self.downloads += 1
        return await self.inner.handle_async_request(request)


async def test_adapter_downloads_image_url_answers_from_the_emulator() -> None:
    app = sandbox_app(SandboxTiming())
    transport = _PaidStorage(httpx.ASGITransport(app=app))
    photo = ImageInput(file_id="file_photo")
    cases: list[tuple[Operation, Params, tuple[int, int], str]] = [
        (Operation.image_generate, GenerateImage(prompt="p", quality="high", aspect="portrait"),
         (832, 1216), "JPEG"),
        (Operation.image_remove_background, RemoveBackground(image=photo), (300, 200), "PNG"),
        (Operation.image_upscale, Upscale(image=photo, scale=2, output_format="png"),
         (600, 400), "PNG"),
        (Operation.image_swap_face, SwapFace(source=photo, target=photo), (300, 200), "JPEG"),
        (Operation.image_outpaint, Outpaint(image=photo, prompt="p", bottom=10), (300, 210),
         "JPEG"),
    ]  # fmt: skip
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        adapter = _adapter(client)
        for operation, params, size, fmt in cases:
            image = _output(await adapter.submit(_call(operation, params)))
            assert (image.size, image.format) == (size, fmt), operation
    assert transport.downloads == len(cases)


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("rate_limit", ErrorCode.provider_rate_limited),
        ("blocked", ErrorCode.upstream_failed),  # a 403: the document gives it no meaning
        ("no_credits", ErrorCode.upstream_failed),  # a 402: likewise
        ("no_face", ErrorCode.no_face_detected),
    ],
)
async def test_adapter_reads_the_emulators_faults(
    sandbox: httpx.AsyncClient, fault: str, code: ErrorCode
) -> None:
    await _arm(sandbox, fault)

    result = await _adapter(sandbox).submit(
        _call(Operation.image_generate, GenerateImage(prompt="pig"))
    )

    assert isinstance(result, Failed)
    assert result.code is code
    if fault == "rate_limit":
        assert result.retry_after_s == 1.0


@pytest.mark.parametrize("fault", ["http_500", "garbage"])
async def test_adapter_raises_on_the_emulators_service_faults(
    sandbox: httpx.AsyncClient, fault: str
) -> None:
    await _arm(sandbox, fault)

    with pytest.raises(ProviderUnavailable):
        await _adapter(sandbox).submit(_call(Operation.image_generate, GenerateImage(prompt="p")))


async def test_adapter_with_a_wrong_key_fails_auth(sandbox: httpx.AsyncClient) -> None:
    result = await _adapter(sandbox, key="wrong").submit(
        _call(Operation.image_generate, GenerateImage(prompt="pig"))
    )

    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.provider_auth_failed, True)
