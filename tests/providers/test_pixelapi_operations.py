"""The PixelAPI adapter's newer endpoints against their documented bodies (respx): replace
background, restore face, remove object, audio, video, virtual try-on, models and balance."""

from __future__ import annotations

import base64
import email.parser
import email.policy
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
    OutputFile,
    Progress,
    ProviderBalance,
    Submitted,
    Succeeded,
    UpstreamModel,
)
from app.providers.pixelapi import PixelApiAdapter
from app.providers.pixelapi_account import read_usage
from tests.utils.media import (
    lined_up,
    marked_mask,
    marked_photo,
    mask_png,
    noise_png,
    orientation_of,
)
from tests.utils.media_source import DictMedia

BASE = "https://api.pixelapi.dev"
KEY = "pk_live_test0000"
OTHER_KEY = "pk_live_other000"
PHOTO = b"\xff\xd8\xff\xe0 a jpeg upload"
MASK = b"\x89PNG\r\n\x1a\n a mask"
GARMENT = b"RIFF\x10\x00\x00\x00WEBPVP8 a garment"
PNG = b"\x89PNG\r\n\x1a\n pretend pixels"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt pretend samples"
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00 pretend frames"
GEN_ID = "a1b2c3d4-0000"
OUTPUT_URL_GEN = "https://api.pixelapi.dev/outputs/images/2026/02/19/gen-2.png"
JOB_ID = "a3f91b00"

MEDIA = DictMedia(
    {
        "file_photo": Media(PHOTO, "image/jpeg"),
        "file_mask": Media(MASK, "image/png"),
        "file_garment": Media(GARMENT, "image/webp"),
    }
)
PHOTO_FILE = ImageInput(file_id="file_photo")
MASK_FILE = ImageInput(file_id="file_mask")
GARMENT_FILE = ImageInput(file_id="file_garment")
URL = ImageInput(url="https://example.com/product.jpg")


def _call(operation: Operation, params: Params) -> Call:
    return Call(job_id="job_1", operation=operation, params=params, media=MEDIA)


AUDIO = _call(Operation.audio_generate, GenerateAudio(prompt="calm lofi hip hop beat"))
VIDEO = _call(Operation.video_generate, GenerateVideo(prompt="a drone shot over mountains"))
TRY_ON = _call(Operation.image_try_on, TryOn(person=PHOTO_FILE, garment=GARMENT_FILE))


@pytest.fixture
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def adapter() -> AsyncIterator[PixelApiAdapter]:
    config = AdapterConfig(
        base_url=BASE,
        credentials=(Credential(api_key=KEY), Credential(api_key=OTHER_KEY)),
        timeout_s=5,
        poll_interval_s=2.5,
    )
    async with httpx.AsyncClient() as client:
        yield PixelApiAdapter(client, config)


def _queued(**body: Any) -> httpx.Response:
    return httpx.Response(200, json={"generation_id": GEN_ID, "status": "queued", **body})


def _form(request: httpx.Request) -> bytes:
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    return request.content


# image endpoints ---------------------------------------------------------------------------------


async def test_replace_background_uploads_the_image_with_the_prompt(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.post("/v1/image/replace-background").mock(
        return_value=_queued(operation="replace-background", credits_used=8.0)
    )
    params = ReplaceBackground(image=PHOTO_FILE, prompt="product on marble countertop")
    result = await adapter.submit(_call(Operation.image_replace_background, params))

    assert result == Submitted(GEN_ID, poll_after_s=2.5)
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"] == "mediagate/0.1"
    body = _form(request)
    assert b'name="image"; filename="image.jpeg"' in body and PHOTO in body
    assert b'name="prompt"\r\n\r\nproduct on marble countertop' in body


async def test_replace_background_from_a_url_is_json(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.post("/v1/image/replace-background").mock(return_value=_queued())
    params = ReplaceBackground(image=URL, prompt="urban alley")
    await adapter.submit(_call(Operation.image_replace_background, params))
    assert json.loads(route.calls.last.request.content) == {
        "image_url": "https://example.com/product.jpg",
        "prompt": "urban alley",
    }


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (PHOTO_FILE, b'name="image";filename="image.jpeg"'),
        (URL, b'{"image_url":"https://example.com/product.jpg"}'),
    ],
)
async def test_restore_face_sends_the_image(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, image: ImageInput, expected: bytes
) -> None:
    route = upstream.post("/v1/image/restore-face").mock(
        return_value=_queued(operation="restore-face", credits_used=5.0)
    )
    call = _call(Operation.image_restore_face, RestoreFace(image=image))
    assert isinstance(await adapter.submit(call), Submitted)
    assert expected in route.calls.last.request.content.replace(b" ", b"")


@pytest.mark.parametrize(
    ("params", "present", "absent"),
    [
        (
            RemoveObject(image=PHOTO_FILE, mask=MASK_FILE),
            [b'name="mask"; filename="mask.png"', MASK],
            [b'name="prompt"'],
        ),
        (
            RemoveObject(image=PHOTO_FILE, prompt="remove the watermark"),
            [b'name="prompt"\r\n\r\nremove the watermark'],
            [b'name="mask"'],
        ),
        (
            RemoveObject(image=PHOTO_FILE, mask=MASK_FILE, prompt="the shadow"),
            [b'name="mask"; filename="mask.png"', b'name="prompt"\r\n\r\nthe shadow'],
            [],
        ),
    ],
)
async def test_remove_object_is_multipart_with_mask_and_or_prompt(
    upstream: respx.MockRouter,
    adapter: PixelApiAdapter,
    params: RemoveObject,
    present: list[bytes],
    absent: list[bytes],
) -> None:
    route = upstream.post("/v1/image/remove-object").mock(
        return_value=_queued(operation="remove-object", credits_used=8.0)
    )
    assert isinstance(await adapter.submit(_call(Operation.image_remove_object, params)), Submitted)
    body = _form(route.calls.last.request)
    assert b'name="image"; filename="image.jpeg"' in body and PHOTO in body
    assert all(part in body for part in present)
    assert not any(part in body for part in absent)


def _parts(request: httpx.Request) -> dict[str, bytes]:
    """The multipart body's parts by field name."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + _form(request))
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(payload, bytes)
        parts[name] = payload
    return parts


async def test_a_mask_is_sent_at_the_size_of_the_image_made_smaller_for_the_byte_limit(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    """PixelAPI's "Max 10MB" makes a 13 MB 2400×1800 PNG smaller; the mask ("Same dimensions
    as source") goes at the size the image goes at, still black and white."""
    route = upstream.post("/v1/image/remove-object").mock(
        return_value=_queued(operation="remove-object", credits_used=8.0)
    )
    media = DictMedia(
        {
            "file_big": Media(noise_png(2400, 1800), "image/png"),
            "file_mask": Media(mask_png(2400, 1800), "image/png"),
        }
    )
    params = RemoveObject(image=ImageInput(file_id="file_big"), mask=MASK_FILE)
    call = Call("job_1", Operation.image_remove_object, params, media)
    assert isinstance(await adapter.submit(call), Submitted)

    parts = _parts(route.calls.last.request)
    image = Image.open(io.BytesIO(parts["image"]))
    mask = Image.open(io.BytesIO(parts["mask"]))
    assert len(parts["image"]) <= 10 * 1024 * 1024 and image.size[0] < 2400
    assert mask.size == image.size
    assert {value for _, value in mask.getcolors() or []} == {0, 255}
    assert [c.input for c in call.conformed] == ["file_big", "file_mask"]


async def test_a_mask_over_a_turned_photos_stored_pixels_is_sent_turned_with_it(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    """A phone photo stored 400×300 with EXIF orientation 6 goes upright, 300×400, untagged;
    its untagged 400×300 mask, drawn over the stored pixels, goes turned the same way: the
    parts have one size ("Same dimensions as source") and the mask covers the marked spot."""
    route = upstream.post("/v1/image/remove-object").mock(
        return_value=_queued(operation="remove-object", credits_used=8.0)
    )
    media = DictMedia(
        {
            "file_photo": Media(marked_photo(400, 300, 6), "image/jpeg"),
            "file_mask": Media(marked_mask(400, 300), "image/png"),
        }
    )
    params = RemoveObject(image=ImageInput(file_id="file_photo"), mask=MASK_FILE)
    call = Call("job_1", Operation.image_remove_object, params, media)
    assert isinstance(await adapter.submit(call), Submitted)

    parts = _parts(route.calls.last.request)
    assert Image.open(io.BytesIO(parts["image"])).size == (300, 400)
    assert lined_up(parts["image"], parts["mask"])
    assert orientation_of(parts["image"]) == orientation_of(parts["mask"]) == 1


# audio --------------------------------------------------------------------------------------------


async def test_audio_sends_only_what_was_given(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.post("/v1/audio/generate").mock(
        return_value=_queued(
            model="musicgen-small", duration=15, credits_used=8.0, estimated_seconds=30
        )
    )
    assert await adapter.submit(AUDIO) == Submitted(GEN_ID, poll_after_s=2.5)
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"prompt": "calm lofi hip hop beat"}


async def test_audio_maps_duration_and_model(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.post("/v1/audio/generate").mock(return_value=_queued())
    params = GenerateAudio(prompt="upbeat flute", duration_s=10, model="musicgen-small")
    await adapter.submit(_call(Operation.audio_generate, params))
    assert json.loads(route.calls.last.request.content) == {
        "prompt": "upbeat flute",
        "duration": 10,
        "model": "musicgen-small",
    }


def _completed(**extra: Any) -> httpx.Response:
    body = {"id": GEN_ID, "status": "completed", "credits_used": 5.0, **extra}
    return httpx.Response(200, json=body)


@pytest.mark.parametrize("declared", ["audio/wav", "application/octet-stream", ""])
async def test_audio_is_polled_on_the_image_path_and_downloads_a_wav(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, declared: str
) -> None:
    url = f"{BASE}/outputs/audio/clip.wav"
    upstream.get(f"/v1/image/{GEN_ID}").mock(return_value=_completed(output_url=url))
    headers = {"content-type": declared} if declared else {}
    upstream.get(url).mock(return_value=httpx.Response(200, content=WAV, headers=headers))
    result = await adapter.poll(AUDIO, GEN_ID)
    assert result == Succeeded(files=[OutputFile(WAV, "audio/wav")])


async def test_audio_output_that_is_a_picture_is_unreadable(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    url = f"{BASE}/outputs/images/x.png"
    upstream.get(f"/v1/image/{GEN_ID}").mock(return_value=_completed(output_url=url))
    upstream.get(url).mock(
        return_value=httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
    )
    with pytest.raises(ProviderUnavailable, match="not audio"):
        await adapter.poll(AUDIO, GEN_ID)


# video --------------------------------------------------------------------------------------------


async def test_video_maps_the_documented_fields(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.post("/v1/video/generate").mock(
        return_value=_queued(model="wan2.1", credits_used=50.0, estimated_seconds=60)
    )
    params = GenerateVideo(
        prompt="a golden retriever in wildflowers",
        negative_prompt="blur",
        duration_s=3,
        resolution="480p",
        seed=7,
    )
    result = await adapter.submit(_call(Operation.video_generate, params))
    assert result == Submitted(GEN_ID, poll_after_s=2.5)
    assert json.loads(route.calls.last.request.content) == {
        "prompt": "a golden retriever in wildflowers",
        "negative_prompt": "blur",
        "duration": 3,
        "resolution": "480p",
        "seed": 7,
    }


async def test_video_defaults_send_only_the_prompt(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.post("/v1/video/generate").mock(return_value=_queued())
    await adapter.submit(VIDEO)
    assert json.loads(route.calls.last.request.content) == {"prompt": "a drone shot over mountains"}


@pytest.mark.parametrize("status", ["queued", "processing"])
async def test_video_is_polled_on_its_own_path(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, status: str
) -> None:
    route = upstream.get(f"/v1/video/{GEN_ID}").mock(
        return_value=httpx.Response(
            200, json={"generation_id": GEN_ID, "status": status, "output_url": None}
        )
    )
    assert await adapter.poll(VIDEO, GEN_ID) == Progress(poll_after_s=2.5)
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


async def test_completed_video_downloads_the_mp4(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    url = f"{BASE}/outputs/video.mp4"
    upstream.get(f"/v1/video/{GEN_ID}").mock(
        return_value=httpx.Response(
            200,
            json={
                "generation_id": GEN_ID,
                "status": "completed",
                "output_url": url,
                "processing_ms": 65000,
            },
        )
    )
    download = upstream.get(url).mock(
        return_value=httpx.Response(200, content=MP4, headers={"content-type": "video/mp4"})
    )
    assert await adapter.poll(VIDEO, GEN_ID) == Succeeded(files=[OutputFile(MP4, "video/mp4")])
    assert "authorization" not in download.calls.last.request.headers


async def test_sniffed_video_without_a_type(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    url = f"{BASE}/outputs/video.mp4"
    upstream.get(f"/v1/video/{GEN_ID}").mock(
        return_value=httpx.Response(
            200, json={"generation_id": GEN_ID, "status": "completed", "output_url": url}
        )
    )
    upstream.get(url).mock(return_value=httpx.Response(200, content=MP4))
    result = await adapter.poll(VIDEO, GEN_ID)
    assert isinstance(result, Succeeded) and result.files[0].content_type == "video/mp4"


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [("failed", ErrorCode.upstream_failed, True), ("blocked", ErrorCode.content_blocked, False)],
)
async def test_video_failures_read_error_message(
    upstream: respx.MockRouter,
    adapter: PixelApiAdapter,
    status: str,
    code: ErrorCode,
    retryable: bool,
) -> None:
    upstream.get(f"/v1/video/{GEN_ID}").mock(
        return_value=httpx.Response(
            200,
            json={"generation_id": GEN_ID, "status": status, "error_message": "diffusion broke"},
        )
    )
    result = await adapter.poll(VIDEO, GEN_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable, result.provider_code) == (code, retryable, status)
    assert "diffusion broke" in result.message


# virtual try-on -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "sent"),
    [
        (None, "upperbody"),
        ("upper_body", "upperbody"),
        ("lower_body", "lowerbody"),
        ("dress", "dress"),
        ("full_body", "dress"),
    ],
)
async def test_try_on_sends_base64_pictures_and_the_mapped_category(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, category: str | None, sent: str
) -> None:
    route = upstream.post("/v1/virtual-tryon").mock(
        return_value=httpx.Response(
            200, json={"job_id": JOB_ID, "status": "queued", "credits_used": 25}
        )
    )
    extra = {"category": category} if category else {}
    params = TryOn(person=PHOTO_FILE, garment=GARMENT_FILE, **extra)
    result = await adapter.submit(_call(Operation.image_try_on, params))

    assert result == Submitted(JOB_ID, poll_after_s=2.5)
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "mediagate/0.1"
    assert json.loads(request.content) == {
        "person_image": base64.b64encode(PHOTO).decode(),
        "garment_image": base64.b64encode(GARMENT).decode(),
        "category": sent,
    }


async def test_try_on_without_a_job_id_is_unreadable(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.post("/v1/virtual-tryon").mock(
        return_value=httpx.Response(200, json={"generation_id": GEN_ID, "status": "queued"})
    )
    with pytest.raises(ProviderUnavailable, match="job_id"):
        await adapter.submit(TRY_ON)


def _try_on_status(**body: Any) -> httpx.Response:
    return httpx.Response(200, json=body)


async def test_try_on_is_polled_on_its_jobs_path(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.get(f"/v1/virtual-tryon/jobs/{JOB_ID}").mock(
        return_value=_try_on_status(status="processing")
    )
    assert await adapter.poll(TRY_ON, JOB_ID) == Progress(poll_after_s=2.5)
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


async def test_completed_try_on_decodes_result_image_b64(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/virtual-tryon/jobs/{JOB_ID}").mock(
        return_value=_try_on_status(
            status="completed",
            result_image_b64=base64.b64encode(PNG).decode(),
            inference_time_ms=35000,
        )
    )
    assert await adapter.poll(TRY_ON, JOB_ID) == Succeeded(files=[OutputFile(PNG, "image/png")])


async def test_failed_try_on_reads_error_message(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/virtual-tryon/jobs/{JOB_ID}").mock(
        return_value=_try_on_status(status="failed", error_message="segmentation failed")
    )
    result = await adapter.poll(TRY_ON, JOB_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.upstream_failed, True)
    assert "segmentation failed" in result.message


@pytest.mark.parametrize(
    "body",
    [
        {"status": "completed"},
        {"status": "completed", "result_image_b64": "not base64!"},
        {"status": "completed", "result_image_b64": base64.b64encode(b"text").decode()},
    ],
)
async def test_unreadable_try_on_results_raise(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, body: dict[str, Any]
) -> None:
    upstream.get(f"/v1/virtual-tryon/jobs/{JOB_ID}").mock(return_value=_try_on_status(**body))
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(TRY_ON, JOB_ID)


async def test_unknown_try_on_job_is_a_retryable_failure(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get(f"/v1/virtual-tryon/jobs/{JOB_ID}").mock(
        return_value=httpx.Response(404, json={"detail": "Job not found"})
    )
    result = await adapter.poll(TRY_ON, JOB_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.upstream_failed, True)


# catalog ------------------------------------------------------------------------------------------

DOC_MODELS = [
    {"id": "flux-schnell", "endpoint": "POST /v1/image/generate", "credits": 3},
    {"id": "sdxl", "endpoint": "POST /v1/image/generate", "credits": 3},
    {"id": "upscale-4x", "endpoint": "POST /v1/image/upscale", "credits": 20},
]


@pytest.mark.parametrize("body", [{"models": DOC_MODELS}, DOC_MODELS, {"data": DOC_MODELS}])
async def test_models_are_listed(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, body: object
) -> None:
    route = upstream.get("/v1/models").mock(return_value=httpx.Response(200, json=body))
    models = await adapter.models()
    assert models == [
        UpstreamModel("flux-schnell", "POST /v1/image/generate", 3.0),
        UpstreamModel("sdxl", "POST /v1/image/generate", 3.0),
        UpstreamModel("upscale-4x", "POST /v1/image/upscale", 20.0),
    ]
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


async def test_models_skip_entries_without_an_id(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    body = {"models": [{"name": "sdxl"}, {"credits": 3}, "junk", {"model": "wan2.1"}]}
    upstream.get("/v1/models").mock(return_value=httpx.Response(200, json=body))
    assert await adapter.models() == [UpstreamModel("sdxl"), UpstreamModel("wan2.1")]


USAGE = [
    # "recent job history with operations, models, status, and output URLs"
    {
        "generation_id": "gen-2",
        "status": "completed",
        "operation": "generate",
        "model": "flux-schnell",
        "credits_used": 5.0,
        "created_at": "2026-02-19T10:01:00Z",
        "output_url": OUTPUT_URL_GEN,
    },
    {
        "generation_id": "gen-1",
        "status": "blocked",
        "operation": "remove-background",
        "credits_used": 0.0,
        "created_at": "2026-02-19T10:00:00Z",
        "output_url": None,
    },
]


async def test_usage_lists_the_newest_jobs_asking_for_the_limit(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.get("/v1/account/usage").mock(
        return_value=httpx.Response(200, json={"usage": USAGE, "count": 2})
    )
    jobs = await adapter.usage(2)
    assert route.calls.last.request.url.params["limit"] == "2"
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"
    assert [job.id for job in jobs] == ["gen-2", "gen-1"]
    assert jobs[0].model == "flux-schnell" and jobs[0].credits == 5.0
    assert jobs[0].output_url == OUTPUT_URL_GEN
    assert jobs[1].status == "blocked" and jobs[1].model is None and jobs[1].output_url is None
    await adapter.usage(1000)
    assert route.calls.last.request.url.params["limit"] == "100"


def test_usage_reads_a_list_or_a_named_one_and_skips_entries_without_an_id() -> None:
    junk = [{"status": "completed"}, "junk", {"id": "gen-3", "credits_used": "five"}]
    assert [job.id for job in read_usage(USAGE)] == ["gen-2", "gen-1"]
    assert [job.id for job in read_usage({"jobs": USAGE})] == ["gen-2", "gen-1"]
    (only,) = read_usage({"data": junk})
    assert only.id == "gen-3" and only.credits is None


async def test_account_is_the_models_and_the_usage(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get("/v1/models").mock(return_value=httpx.Response(200, json={"models": DOC_MODELS}))
    upstream.get("/v1/account/usage").mock(return_value=httpx.Response(200, json={"usage": USAGE}))
    account = await adapter.account(20)
    assert [model.id for model in account.models] == ["flux-schnell", "sdxl", "upscale-4x"]
    assert [job.id for job in account.recent_jobs] == ["gen-2", "gen-1"]


async def test_an_unreadable_usage_body_is_the_upstreams_fault(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    upstream.get("/v1/account/usage").mock(return_value=httpx.Response(200, json={"n": 1}))
    with pytest.raises(ProviderUnavailable):
        await adapter.usage()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>"),
        httpx.Response(200, json={"models": "none"}),
        httpx.Response(200, json="models"),
        httpx.Response(401, json={"detail": "Invalid API key"}),
    ],
)
async def test_unreadable_or_refused_model_lists_raise(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, response: httpx.Response
) -> None:
    upstream.get("/v1/models").mock(return_value=response)
    with pytest.raises(ProviderUnavailable):
        await adapter.models()


async def test_balance_reads_credits_remaining_of_the_first_account(
    upstream: respx.MockRouter, adapter: PixelApiAdapter
) -> None:
    route = upstream.get("/v1/account/balance").mock(
        return_value=httpx.Response(
            200,
            json={"credits_remaining": 9997.0, "plan": "starter", "email": "you@example.com"},
        )
    )
    assert await adapter.balance() == ProviderBalance(amount=9997.0, unit="credits")
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"] == "mediagate/0.1"


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (httpx.Response(401, json={"detail": "Invalid API key"}), "Invalid API key"),
        (httpx.Response(500, json={"detail": "Internal server error"}), "500"),
        (httpx.Response(200, json={"plan": "starter"}), "credits_remaining"),
        (httpx.Response(200, json={"credits_remaining": "lots"}), "credits_remaining"),
        (httpx.Response(200, json=[9997.0]), "credits_remaining"),
    ],
)
async def test_balance_errors_raise_without_the_key(
    upstream: respx.MockRouter, adapter: PixelApiAdapter, response: httpx.Response, match: str
) -> None:
    upstream.get("/v1/account/balance").mock(return_value=response)
    with pytest.raises(ProviderUnavailable, match=match) as raised:
        await adapter.balance()
    assert KEY not in str(raised.value)
