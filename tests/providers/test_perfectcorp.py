"""The Perfect Corp adapter against the request and response bodies of its document (respx).

The document's samples are elided; the bodies below follow its schemas (the readings are in
``app/providers/perfectcorp.py``). Shared state is a real Redis (``RedisAdapterState``).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from PIL import Image
from redis.asyncio import Redis

from app.domain.errors import ErrorCode, InvalidRequest, ProviderUnavailable, UpstreamTimeout
from app.domain.media import ImageInput
from app.domain.operations import (
    Age,
    Colorize,
    GenerateImage,
    Hairstyle,
    Operation,
    Params,
    RemoveBackground,
    RemoveObject,
    TransferMakeup,
    Upscale,
)
from app.providers import perfectcorp_auth
from app.providers.base import (
    AdapterConfig,
    Call,
    Credential,
    Failed,
    Media,
    OutputFile,
    PollTrouble,
    Progress,
    Style,
    Submitted,
    Succeeded,
    UpstreamLimit,
)
from app.providers.perfectcorp import PerfectCorpAdapter
from app.providers.perfectcorp_wire import ERRORS
from app.sandbox import images
from app.sandbox.credentials import PERFECTCORP_CLIENT_SECRET, PERFECTCORP_PRIVATE_KEY_PEM
from app.store.adapter_state import RedisAdapterState
from app.store.keys import adapter_state
from tests.utils.media import (
    lined_up,
    marked_mask,
    marked_photo,
    mask_png,
    noise_png,
    orientation_of,
)
from tests.utils.media_source import DictMedia

BASE = "https://yce-api-01.perfectcorp.com"
API = f"{BASE}/s2s/v1.0"
STORAGE = "https://yce-us.s3-accelerate.amazonaws.com"
CLIENT_ID = "BMIL1PIJjCV96JlSl64RlVksHK1cD0PQ"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.first"
TOKEN_2 = "eyJhbGciOiJIUzI1NiJ9.second"
TASK_ID = "SX9ALF1Z+KIiNa+GaFRp4bI5gijoc/ckI2teebLq35Bo1Nwc++3iXXdKqnU4/LID"
GROUP_ID, STYLE_ID = 18213963761051864, 22205685004925400
STYLE = f"{GROUP_ID}:{STYLE_ID}"
RESULT_URL = f"{STORAGE}/result/0c1e.jpg?X-Amz-Signature=ab12"

PHOTO = images.render(64, 48, "jpeg", seed=1)
PNG_PHOTO = images.render(64, 48, "png", seed=2)
WEBP_PHOTO = images.render(64, 48, "webp", seed=3)
MEDIA = DictMedia(
    {
        "file_photo": Media(PHOTO, "image/jpeg"),
        "file_look": Media(PHOTO, "image/jpeg"),
        "file_mask": Media(PNG_PHOTO, "image/png"),
        "file_png": Media(PNG_PHOTO, "image/png"),
        "file_webp": Media(WEBP_PHOTO, "image/webp"),
        "file_junk": Media(b"not a picture", "image/webp"),
        "file_heic": Media(b"\x00\x00\x00\x18ftypheic a phone photo", "image/heic"),
    }
)
IMAGE = ImageInput(file_id="file_photo")
HEIC = ImageInput(file_id="file_heic")


def _call(operation: Operation, params: Params, job_id: str = "job_1", attempt: int = 0) -> Call:
    return Call(job_id, operation, params, MEDIA, attempt=attempt)


COLORIZE = _call(Operation.image_colorize, Colorize(image=IMAGE))


def _ok(result: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"status": 200, "result": result})


def _refused(status: int, error: str, code: str) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "error": error, "error_code": code})


def _status(status: str, **extra: Any) -> httpx.Response:
    return _ok({"polling_interval": 500, "status": status, **extra})


def _success(*urls: str, **extra: Any) -> httpx.Response:
    data = [{"dst_id": f"dst-{n}", "url": url} for n, url in enumerate(urls)]
    return _status("success", results=[{"id": 0, "data": data, **extra}])


def _file_answer(request: httpx.Request) -> httpx.Response:
    """``file/<feature>``: one file id and upload request per asked file, as documented."""
    asked = json.loads(request.content)["files"]
    files = [
        {
            "content_type": f["content_type"],
            "file_name": f["file_name"],
            "file_id": f"fid-{f['file_name']}",
            "requests": [
                {
                    "headers": {"Content-Type": f["content_type"], "x-amz-acl": "private"},
                    "url": f"{STORAGE}/upload/{f['file_name']}?X-Amz-Signature=ab12",
                    "method": "PUT",
                }
            ],
        }
        for f in asked
    ]
    return _ok({"files": files})


class Upstream:
    """The routes every test needs: sign-in, file creation, storage, task submission."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.router = router
        self.auth = router.post(f"{API}/client/auth").mock(
            return_value=_ok({"access_token": TOKEN})
        )
        self.files = router.post(url__regex=rf"{API}/file/[a-z-]+$").mock(side_effect=_file_answer)
        self.storage = router.put(url__startswith=f"{STORAGE}/upload/").mock(
            return_value=httpx.Response(200)
        )
        self.tasks = router.post(url__regex=rf"{API}/task/[a-z-]+$").mock(
            return_value=_ok({"task_id": TASK_ID})
        )
        self.result = router.get(RESULT_URL).mock(
            return_value=httpx.Response(200, content=PHOTO, headers={"content-type": "image/jpeg"})
        )

    def poll(self, slug: str, *responses: httpx.Response) -> respx.Route:
        return self.router.get(f"{API}/task/{slug}").mock(side_effect=list(responses))

    def task_body(self, index: int = -1) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.tasks.calls[index].request.content)
        return body


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield Upstream(router)


@pytest.fixture
def state(redis_client: Redis) -> RedisAdapterState:
    return RedisAdapterState(redis_client, "perfectcorp")


def _config(**overrides: Any) -> AdapterConfig:
    settings: dict[str, Any] = {
        "base_url": BASE + "/",
        "credentials": (Credential(client_id=CLIENT_ID, client_secret=PERFECTCORP_CLIENT_SECRET),),
        "timeout_s": 5,
        "poll_interval_s": 1.5,
        **overrides,
    }
    return AdapterConfig(**settings)


@pytest.fixture
async def adapter(state: RedisAdapterState) -> AsyncIterator[PerfectCorpAdapter]:
    async with httpx.AsyncClient() as client:
        yield PerfectCorpAdapter(client, _config(), state)


def _private_key() -> RSAPrivateKey:
    key = load_pem_private_key(PERFECTCORP_PRIVATE_KEY_PEM.encode(), password=None)
    assert isinstance(key, RSAPrivateKey)
    return key


# sign-in ---------------------------------------------------------------------------------------


async def test_sign_in_sends_the_rsa_encrypted_id_token(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    before = int(time.time() * 1000)
    assert isinstance(await adapter.submit(COLORIZE), Submitted)

    body = json.loads(upstream.auth.calls.last.request.content)
    assert body.keys() == {"client_id", "id_token"} and body["client_id"] == CLIENT_ID
    plain = _private_key().decrypt(base64.b64decode(body["id_token"]), padding.PKCS1v15())
    fields = dict(part.split("=") for part in plain.decode().split("&"))
    assert fields["client_id"] == CLIENT_ID
    assert before <= int(fields["timestamp"]) <= int(time.time() * 1000)
    assert "authorization" not in upstream.auth.calls.last.request.headers
    for route in (upstream.files, upstream.tasks):
        assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_the_token_is_shared_through_state_until_shortly_before_two_hours(
    upstream: Upstream, adapter: PerfectCorpAdapter, redis_client: Redis
) -> None:
    await adapter.submit(COLORIZE)
    await adapter.submit(_call(Operation.image_colorize, Colorize(image=IMAGE), "job_2"))
    assert upstream.auth.call_count == 1

    keys = list(await redis_client.keys(adapter_state("perfectcorp", "token:*")))
    assert len(keys) == 1 and CLIENT_ID not in keys[0]
    ttl_s = await redis_client.pttl(keys[0]) / 1000
    assert 2 * 3600 - 15 * 60 < ttl_s <= perfectcorp_auth.TOKEN_TTL_S < 2 * 3600


async def test_a_401_signs_in_again_once_and_repeats_the_request(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    upstream.auth.side_effect = [_ok({"access_token": TOKEN}), _ok({"access_token": TOKEN_2})]
    upstream.tasks.side_effect = [
        _refused(401, "Access token expired", "InvalidAccessToken"),
        _ok({"task_id": TASK_ID}),
    ]
    assert isinstance(await adapter.submit(COLORIZE), Submitted)
    assert upstream.auth.call_count == 2
    tokens = [call.request.headers["authorization"] for call in upstream.tasks.calls]
    assert tokens == [f"Bearer {TOKEN}", f"Bearer {TOKEN_2}"]
    assert upstream.task_body(0) == upstream.task_body(1)


async def test_a_second_401_is_provider_auth_failed(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    upstream.tasks.side_effect = None
    upstream.tasks.return_value = _refused(401, "Invalid access token", "InvalidAccessToken")
    result = await adapter.submit(COLORIZE)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable, result.provider_code) == (
        ErrorCode.provider_auth_failed,
        True,
        "InvalidAccessToken",
    )
    assert upstream.auth.call_count == 2 and upstream.tasks.call_count == 2


@pytest.mark.parametrize(
    "answer",
    [
        _refused(401, "Invalid id_token", "InvalidIdToken"),
        _refused(401, "Unknown client_id", "InvalidClientId"),
        _refused(400, "client_id and id_token are required", "InvalidParameters"),
        _ok({}),
    ],
)
async def test_a_refused_sign_in_is_provider_auth_failed(
    upstream: Upstream, adapter: PerfectCorpAdapter, answer: httpx.Response
) -> None:
    upstream.auth.return_value = answer
    result = await adapter.submit(COLORIZE)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.provider_auth_failed, True)
    assert upstream.files.call_count == 0


async def test_a_rate_limited_sign_in_is_provider_rate_limited(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    upstream.auth.return_value = _refused(429, "Too Many Requests", "RateLimitExceeded")
    result = await adapter.submit(COLORIZE)
    assert isinstance(result, Failed) and result.code is ErrorCode.provider_rate_limited


@pytest.mark.parametrize(
    "credential",
    [
        Credential(client_id=CLIENT_ID),
        Credential(client_id=CLIENT_ID, client_secret="not base64 at all!"),
        Credential(client_id=CLIENT_ID, client_secret=base64.b64encode(b"not a key").decode()),
    ],
)
async def test_an_unusable_credential_fails_without_a_request(
    upstream: Upstream, state: RedisAdapterState, credential: Credential
) -> None:
    async with httpx.AsyncClient() as client:
        adapter = PerfectCorpAdapter(client, _config(credentials=(credential,)), state)
        result = await adapter.submit(COLORIZE)
    assert isinstance(result, Failed) and result.code is ErrorCode.provider_auth_failed
    assert upstream.auth.call_count == 0


async def test_concurrent_callers_sign_in_once(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    async def slow_sign_in(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.1)
        return _ok({"access_token": TOKEN})

    upstream.auth.side_effect = slow_sign_in
    calls = [_call(Operation.image_colorize, Colorize(image=IMAGE), f"job_{n}") for n in range(4)]
    results = await asyncio.gather(*(adapter.submit(call) for call in calls))
    assert all(isinstance(r, Submitted) for r in results)
    assert upstream.auth.call_count == 1


# upload and task bodies -------------------------------------------------------------------------


async def test_upload_flow_then_the_documented_task_body(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    result = await adapter.submit(COLORIZE)
    assert result == Submitted(TASK_ID, poll_after_s=1.5)

    assert upstream.files.calls.last.request.url == f"{API}/file/colorize"
    assert json.loads(upstream.files.calls.last.request.content) == {
        "files": [{"content_type": "image/jpeg", "file_name": "image.jpg"}]
    }
    put = upstream.storage.calls.last.request
    assert put.method == "PUT" and put.content == PHOTO
    assert put.url == f"{STORAGE}/upload/image.jpg?X-Amz-Signature=ab12"
    assert (put.headers["content-type"], put.headers["x-amz-acl"]) == ("image/jpeg", "private")
    assert "authorization" not in put.headers
    assert upstream.tasks.calls.last.request.url == f"{API}/task/colorize"
    assert upstream.task_body() == {
        "request_id": 0,
        "payload": {
            "file_sets": {"src_ids": ["fid-image.jpg"]},
            "actions": [{"id": 0}],
            "output_ext": "jpg",
        },
    }


HAIR = {"style_group_id": GROUP_ID, "style_ids": [STYLE_ID]}


@pytest.mark.parametrize("style_id", [f"{STYLE}\n", f"\n{STYLE}", f"{STYLE} ", "1:2:3"])
def test_a_style_id_is_the_whole_string_or_refused(style_id: str) -> None:
    """Anything around ``<group>:<style>`` (a trailing newline slipped past ``$``) is refused
    with the request, not carried into the job."""
    binding = PerfectCorpAdapter.bindings[Operation.image_hairstyle]
    assert binding.refuses(Hairstyle(image=IMAGE, style_id=STYLE)) is None
    assert binding.refuses(Hairstyle(image=IMAGE, style_id=style_id)) == "style_id"


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        (Operation.image_colorize, Colorize(image=IMAGE, output_format="png")),
        (Operation.image_remove_background, RemoveBackground(image=IMAGE, output_format="jpeg")),
    ],
)
def test_an_output_format_the_task_lacks_is_refused(operation: Operation, params: Params) -> None:
    assert PerfectCorpAdapter.bindings[operation].refuses(params) == "output_format"


@pytest.mark.parametrize(
    ("operation", "params", "slug", "file_sets", "action", "ext"),
    [
        (Operation.image_hairstyle, Hairstyle(image=IMAGE, style_id=STYLE), "hair-style",
         {"src_ids": ["fid-image.jpg"]}, HAIR, "jpg"),
        (Operation.image_hairstyle, Hairstyle(image=IMAGE, variant="wig", style_id=STYLE), "wig",
         {"src_ids": ["fid-image.jpg"]}, HAIR, "jpg"),
        (Operation.image_hairstyle, Hairstyle(image=IMAGE, variant="extension", style_id=STYLE),
         "hair-ext", {"src_ids": ["fid-image.jpg"]}, HAIR, "jpg"),
        (Operation.image_hairstyle, Hairstyle(image=IMAGE, variant="bangs", style_id=STYLE),
         "hair-bang", {"src_ids": ["fid-image.jpg"]}, HAIR, "jpg"),
        (Operation.image_hairstyle, Hairstyle(image=IMAGE, variant="volume", style_id=STYLE),
         "hair-vol", {"src_ids": ["fid-image.jpg"]}, HAIR, "jpg"),
        (Operation.image_age, Age(image=IMAGE), "aging", {"src_ids": ["fid-image.jpg"]}, None,
         "jpg"),
        (Operation.image_transfer_makeup,
         TransferMakeup(image=IMAGE, reference=ImageInput(file_id="file_look")), "mu-trans-rec",
         {"src_ids": ["fid-image.jpg"], "ref_ids": ["fid-reference.jpg"]}, None, "jpg"),
        (Operation.image_remove_object,
         RemoveObject(image=IMAGE, mask=ImageInput(file_id="file_mask")), "obj-removal",
         {"src_ids": ["fid-image.jpg"], "mask_ids": ["fid-mask.png"]}, None, "jpg"),
        (Operation.image_remove_background, RemoveBackground(image=IMAGE), "sod",
         {"src_ids": ["fid-image.jpg"]}, None, "png"),
        # WebP outputs where the task's output_ext enum has them
        (Operation.image_remove_background, RemoveBackground(image=IMAGE, output_format="webp"),
         "sod", {"src_ids": ["fid-image.jpg"]}, None, "webp"),
        (Operation.image_colorize, Colorize(image=IMAGE, output_format="webp"), "colorize",
         {"src_ids": ["fid-image.jpg"]}, None, "webp"),
        (Operation.image_remove_object,
         RemoveObject(image=IMAGE, mask=ImageInput(file_id="file_mask"), output_format="webp"),
         "obj-removal", {"src_ids": ["fid-image.jpg"], "mask_ids": ["fid-mask.png"]}, None,
         "webp"),
        (Operation.image_upscale, Upscale(image=IMAGE), "enhance",
         {"src_ids": ["fid-image.jpg"]}, {"scale": 2}, "jpg"),
        (Operation.image_upscale, Upscale(image=IMAGE, scale=4, output_format="webp"), "enhance",
         {"src_ids": ["fid-image.jpg"]}, {"scale": 4}, "webp"),
        (Operation.image_generate, GenerateImage(prompt="a red fox, watercolor", style_id=STYLE),
         "text-to-image", None, {"prompt": "a red fox, watercolor", **HAIR}, "jpg"),
    ],
)  # fmt: skip
async def test_every_task_sends_its_documented_payload(
    upstream: Upstream,
    adapter: PerfectCorpAdapter,
    operation: Operation,
    params: Params,
    slug: str,
    file_sets: dict[str, list[str]] | None,
    action: dict[str, Any] | None,
    ext: str,
) -> None:
    assert isinstance(await adapter.submit(_call(operation, params)), Submitted)
    assert upstream.tasks.calls.last.request.url == f"{API}/task/{slug}"
    payload = upstream.task_body()["payload"]
    assert payload.get("file_sets") == file_sets
    assert payload["actions"] == [{"id": 0, "params": action} if action else {"id": 0}]
    assert payload["output_ext"] == ext
    if file_sets:
        assert upstream.files.calls.last.request.url == f"{API}/file/{slug}"
        assert upstream.files.call_count == 1
        assert upstream.storage.call_count == len(file_sets)
    else:
        assert upstream.files.call_count == 0


@pytest.mark.parametrize(
    ("operation", "params", "sent_type"),
    [
        (Operation.image_colorize, Colorize(image=ImageInput(file_id="file_webp")), "PNG"),
        (Operation.image_colorize, Colorize(image=ImageInput(file_id="file_png")), "PNG"),
        (Operation.image_hairstyle,
         Hairstyle(image=ImageInput(file_id="file_png"), style_id=STYLE), "JPEG"),
        (Operation.image_hairstyle,
         Hairstyle(image=ImageInput(file_id="file_webp"), style_id=STYLE), "JPEG"),
    ],
)  # fmt: skip
async def test_inputs_are_re_encoded_to_a_type_the_feature_takes(
    upstream: Upstream,
    adapter: PerfectCorpAdapter,
    operation: Operation,
    params: Params,
    sent_type: str,
) -> None:
    assert isinstance(await adapter.submit(_call(operation, params)), Submitted)
    asked = json.loads(upstream.files.calls.last.request.content)["files"][0]
    assert asked["content_type"] == f"image/{sent_type.lower()}"
    sent = Image.open(io.BytesIO(upstream.storage.calls.last.request.content))
    assert (sent.format, sent.size) == (sent_type, (64, 48))


async def removal_uploads(
    upstream: Upstream, adapter: PerfectCorpAdapter, image: Media, mask: Media
) -> dict[str, bytes]:
    """An object removal of ``image`` under ``mask`` submitted: the files it uploaded, by
    name."""
    media = DictMedia({"file_image": image, "file_mask": mask})
    params = RemoveObject(
        image=ImageInput(file_id="file_image"), mask=ImageInput(file_id="file_mask")
    )
    call = Call("job_1", Operation.image_remove_object, params, media)
    assert isinstance(await adapter.submit(call), Submitted)
    return {str(c.request.url).split("/upload/")[1].split("?")[0]: c.request.content
            for c in upstream.storage.calls}  # fmt: skip


async def test_a_mask_is_uploaded_at_the_size_of_the_image_made_smaller_for_the_byte_limit(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    """Perfect's "< 10MB" makes a 13 MB 2400×1800 PNG smaller; the mask ("the exact same width and
    hight with the input image") is uploaded at the size the image is, still grey and binary."""
    uploads = await removal_uploads(
        upstream,
        adapter,
        Media(noise_png(2400, 1800), "image/png"),
        Media(mask_png(2400, 1800), "image/png"),
    )
    image = Image.open(io.BytesIO(uploads["image.png"]))
    mask = Image.open(io.BytesIO(uploads["mask.png"]))
    assert len(uploads["image.png"]) < 10 * 1024 * 1024 and image.size[0] < 2400
    assert (mask.size, mask.mode) == (image.size, "L")
    assert {value for _, value in mask.getcolors() or []} == {0, 255}


async def test_a_mask_over_a_turned_photos_stored_pixels_is_uploaded_turned_with_it(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    """A photo stored 400×300 with EXIF orientation 6 is uploaded upright, 300×400, untagged;
    its untagged 400×300 mask, drawn over the stored pixels, is uploaded turned the same way
    ("the exact same width and hight with the input image"), over the marked spot."""
    uploads = await removal_uploads(
        upstream,
        adapter,
        Media(marked_photo(400, 300, 6), "image/jpeg"),
        Media(marked_mask(400, 300), "image/png"),
    )
    image, mask = uploads["image.jpg"], uploads["mask.png"]
    assert Image.open(io.BytesIO(image)).size == (300, 400)
    assert lined_up(image, mask)
    assert orientation_of(image) == orientation_of(mask) == 1


async def test_an_unreadable_input_of_a_foreign_type_is_invalid_media(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    call = _call(Operation.image_colorize, Colorize(image=ImageInput(file_id="file_junk")))
    result = await adapter.submit(call)
    assert isinstance(result, Failed) and result.code is ErrorCode.invalid_media
    assert upstream.files.call_count == 0


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        (Operation.image_upscale, Upscale(image=HEIC)),
        (Operation.image_remove_background, RemoveBackground(image=HEIC)),
        (Operation.image_remove_object, RemoveObject(image=HEIC, prompt="the cup")),
        (
            Operation.image_transfer_makeup,
            TransferMakeup(image=HEIC, reference=ImageInput(file_id="file_look")),
        ),
    ],
)
async def test_a_heic_input_is_refused_unsent_where_the_upload_call_takes_none(
    upstream: Upstream, adapter: PerfectCorpAdapter, operation: Operation, params: Params
) -> None:
    """The formats table lists HEIC for these tasks; the upload call's ``content_type`` enum,
    whose values are the only ones "currently available", does not: nothing is sent."""
    result = await adapter.submit(_call(operation, params))
    assert isinstance(result, Failed) and result.code is ErrorCode.invalid_media
    assert not result.retryable
    assert upstream.files.call_count == 0


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        (Operation.image_hairstyle, Hairstyle(image=IMAGE)),
        (Operation.image_generate, GenerateImage(prompt="a fox")),
    ],
)
async def test_a_styled_task_without_style_id_fails_before_any_request(
    upstream: Upstream, adapter: PerfectCorpAdapter, operation: Operation, params: Params
) -> None:
    result = await adapter.submit(_call(operation, params))
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.invalid_parameter, False)
    assert "style_id" in result.message
    assert upstream.auth.call_count == 0


# request_id -------------------------------------------------------------------------------------


async def test_request_ids_increment_from_zero_per_credential(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    for n in range(3):
        await adapter.submit(_call(Operation.image_colorize, Colorize(image=IMAGE), f"job_{n}"))
    assert [upstream.task_body(n)["request_id"] for n in range(3)] == [0, 1, 2]


async def test_a_resumed_attempt_reuses_its_file_and_request_id(
    upstream: Upstream, state: RedisAdapterState
) -> None:
    """Two processes (two adapters, one state): the second resubmits what the first sent."""
    async with httpx.AsyncClient() as one, httpx.AsyncClient() as two:
        first, second = (PerfectCorpAdapter(c, _config(), state) for c in (one, two))
        upstream.tasks.side_effect = [httpx.ConnectError("crashed"), _ok({"task_id": TASK_ID})]
        with pytest.raises(ProviderUnavailable):
            await first.submit(COLORIZE)
        assert await second.submit(COLORIZE) == Submitted(TASK_ID, poll_after_s=1.5)
    assert upstream.files.call_count == 1 and upstream.storage.call_count == 1
    assert upstream.task_body(0) == upstream.task_body(1)


async def test_another_attempt_of_the_same_job_is_a_new_request(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    await adapter.submit(COLORIZE)
    await adapter.submit(_call(Operation.image_colorize, Colorize(image=IMAGE), attempt=1))
    assert [upstream.task_body(n)["request_id"] for n in (0, 1)] == [0, 1]
    assert upstream.files.call_count == 2


@pytest.mark.parametrize(
    "ending",
    [
        _status("error", error="error_inference"),
        _refused(400, "Invalid task id", "InvalidTaskId"),
    ],
)
async def test_after_a_failed_or_lost_task_the_retry_reruns_the_same_file_under_a_new_id(
    upstream: Upstream, adapter: PerfectCorpAdapter, ending: httpx.Response
) -> None:
    upstream.poll("colorize", ending)
    await adapter.submit(COLORIZE)
    failed = await adapter.poll(COLORIZE, TASK_ID)
    assert isinstance(failed, Failed) and failed.retryable
    await adapter.submit(COLORIZE)
    assert [upstream.task_body(n)["request_id"] for n in (0, 1)] == [0, 1]
    assert upstream.task_body(0)["payload"] == upstream.task_body(1)["payload"]
    assert upstream.files.call_count == 1


async def test_a_refused_submission_keeps_its_request_id(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    upstream.tasks.side_effect = [
        _refused(429, "Too Many Requests", "RateLimitExceeded"),
        _ok({"task_id": TASK_ID}),
    ]
    assert isinstance(await adapter.submit(COLORIZE), Failed)
    assert isinstance(await adapter.submit(COLORIZE), Submitted)
    assert upstream.task_body(0) == upstream.task_body(1)


# polling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "expected"), [(500, 0.5), (0, 0.0), (20_000, 3.0), (None, 1.5)]
)
async def test_running_polls_again_after_polling_interval_never_past_3_s(
    upstream: Upstream, adapter: PerfectCorpAdapter, interval: int | None, expected: float
) -> None:
    body: dict[str, Any] = {"status": "running"}
    if interval is not None:
        body["polling_interval"] = interval
    route = upstream.poll("colorize", _ok(body))
    assert await adapter.poll(COLORIZE, TASK_ID) == Progress(poll_after_s=expected)
    request = route.calls.last.request
    assert request.url.params["task_id"] == TASK_ID
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_the_first_poll_comes_within_3_s(
    upstream: Upstream, state: RedisAdapterState
) -> None:
    async with httpx.AsyncClient() as client:
        adapter = PerfectCorpAdapter(client, _config(poll_interval_s=30), state)
        assert await adapter.submit(COLORIZE) == Submitted(TASK_ID, poll_after_s=3.0)


async def test_success_downloads_the_result_without_the_token(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    upstream.poll("colorize", _success(RESULT_URL))
    result = await adapter.poll(COLORIZE, TASK_ID)
    assert result == Succeeded(files=[OutputFile(PHOTO, "image/jpeg")])
    assert "authorization" not in upstream.result.calls.last.request.headers


async def test_aging_leaves_out_the_uploaded_photo_and_reports_ages(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    urls = [f"{STORAGE}/result/age-{n}.jpg" for n in range(4)]
    for n, url in enumerate(urls):
        picture = images.render(8, 8, "jpeg", seed=n)
        upstream.router.get(url).respond(
            200, content=picture, headers={"content-type": "image/jpeg"}
        )
    data = [
        {"dst_id": f"d{n}", "url": url, "res_age": age}
        for n, (url, age) in enumerate(zip(urls, (20, 30, 45, 60), strict=True))
    ]
    custom = {"age": 33, "age_idx": 1, "age_min": 20, "age_max": 60, "num_of_photos": 4}
    body = _status("success", results=[{"id": 0, "data": data, "custom_info": custom}])
    upstream.poll("aging", body)

    result = await adapter.poll(_call(Operation.image_age, Age(image=IMAGE)), TASK_ID)
    assert isinstance(result, Succeeded)
    assert [f.content for f in result.files] == [
        images.render(8, 8, "jpeg", seed=n) for n in (0, 2, 3)
    ]
    assert result.data == {"estimated_age": 33, "ages": [20, 45, 60]}


async def test_a_result_with_an_untyped_body_is_sniffed(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    upstream.poll("sod", _success(RESULT_URL))
    upstream.result.return_value = httpx.Response(
        200, content=PNG_PHOTO, headers={"content-type": "binary/octet-stream"}
    )
    call = _call(Operation.image_remove_background, RemoveBackground(image=IMAGE))
    result = await adapter.poll(call, TASK_ID)
    assert isinstance(result, Succeeded) and result.files[0].content_type == "image/png"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(403, text="<Error><Code>AccessDenied</Code></Error>"),
        httpx.Response(
            200, text="<html>not a picture</html>", headers={"content-type": "text/html"}
        ),
    ],
)
async def test_an_expired_or_unreadable_result_raises(
    upstream: Upstream, adapter: PerfectCorpAdapter, answer: httpx.Response
) -> None:
    upstream.poll("colorize", _success(RESULT_URL))
    upstream.result.return_value = answer
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(COLORIZE, TASK_ID)


@pytest.mark.parametrize(
    "answer",
    [
        _ok({}),
        _ok({"status": "success"}),
        _ok({"status": "success", "results": [{"id": 0, "data": []}]}),
        _ok({"status": "success", "results": [{"id": 0, "data": [{"url": "ftp://x"}]}]}),
        httpx.Response(200, json={"status": 200}),
        httpx.Response(200, text="<html>gateway</html>"),
    ],
)
async def test_unreadable_status_answers_raise(
    upstream: Upstream, adapter: PerfectCorpAdapter, answer: httpx.Response
) -> None:
    upstream.poll("colorize", answer)
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(COLORIZE, TASK_ID)


# the error table --------------------------------------------------------------------------------

ENGINE_ERRORS: list[tuple[str, ErrorCode, bool]] = [
    ("exceed_max_filesize", ErrorCode.media_too_large, False),
    ("invalid_parameter", ErrorCode.invalid_parameter, False),
    ("error_download_image", ErrorCode.invalid_media, True),
    ("error_download_mask", ErrorCode.invalid_media, True),
    ("error_decode_image", ErrorCode.invalid_media, False),
    ("error_decode_mask", ErrorCode.invalid_media, False),
    ("error_nsfw_content_detected", ErrorCode.content_blocked, False),
    ("error_no_face", ErrorCode.no_face_detected, False),
    ("error_pose", ErrorCode.invalid_media, False),
    ("error_face_parsing", ErrorCode.no_face_detected, False),
    ("error_inference", ErrorCode.upstream_failed, True),
    ("exceed_nsfw_retry_limits", ErrorCode.content_blocked, False),
    ("error_upload", ErrorCode.upstream_failed, True),
    ("error_multiple_people", ErrorCode.invalid_media, False),
    ("error_no_shoulder", ErrorCode.invalid_media, False),
    ("error_large_face_angle", ErrorCode.invalid_media, False),
    ("unknown_internal_error", ErrorCode.upstream_failed, True),
]
"""Every row of the document's error table."""


def test_the_error_table_covers_every_documented_engine_error() -> None:
    assert {code for code, _, _ in ENGINE_ERRORS} <= set(ERRORS)
    assert len(ENGINE_ERRORS) == 17


@pytest.mark.parametrize(("error", "code", "retryable"), ENGINE_ERRORS)
async def test_every_engine_error_maps_through_the_table(
    upstream: Upstream, adapter: PerfectCorpAdapter, error: str, code: ErrorCode, retryable: bool
) -> None:
    upstream.poll("colorize", _status("error", error=error))
    result = await adapter.poll(COLORIZE, TASK_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable, result.provider_code) == (code, retryable, error)
    assert error in result.message


@pytest.mark.parametrize("error", ["error_src_face_too_small", None])
async def test_an_engine_error_not_in_the_table_reads_as_others(
    upstream: Upstream, adapter: PerfectCorpAdapter, error: str | None
) -> None:
    upstream.poll("colorize", _status("error", **({"error": error} if error else {})))
    result = await adapter.poll(COLORIZE, TASK_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.upstream_failed, True)


@pytest.mark.parametrize(
    ("answer", "code", "retryable", "provider_code"),
    [
        # the document names no error_code: a 400 naming one is kept, not read
        (_refused(400, "Invalid parameters", "InvalidParameters"), ErrorCode.upstream_failed,
         True, "InvalidParameters"),
        (_refused(400, "Insufficient credits", "CreditInsufficiency"),
         ErrorCode.upstream_failed, True, "CreditInsufficiency"),
        (_refused(400, "Invalid task id", "InvalidTaskId"), ErrorCode.upstream_failed, True,
         "InvalidTaskId"),
        (_refused(429, "Too Many Requests", "RateLimitExceeded"),
         ErrorCode.provider_rate_limited, True, "RateLimitExceeded"),
        (httpx.Response(429, text="Too Many Requests"), ErrorCode.provider_rate_limited, True,
         "http_429"),
        (httpx.Response(400, json={"status": 400, "error": "bad"}), ErrorCode.invalid_parameter,
         False, "http_400"),
        (httpx.Response(403, text="Forbidden"), ErrorCode.provider_auth_failed, True, "http_403"),
        (httpx.Response(404, json={"status": 404, "error": "Not Found", "error_code": "NotFound"}),
         ErrorCode.upstream_failed, True, "NotFound"),
        (httpx.Response(413, text="Request Entity Too Large"), ErrorCode.media_too_large, False,
         "http_413"),
        (_refused(409, "Conflict", "Conflict"), ErrorCode.upstream_failed, False, "Conflict"),
    ],
)  # fmt: skip
async def test_http_refusals_map_through_the_table(
    upstream: Upstream,
    adapter: PerfectCorpAdapter,
    answer: httpx.Response,
    code: ErrorCode,
    retryable: bool,
    provider_code: str,
) -> None:
    upstream.tasks.return_value = answer
    result = await adapter.submit(COLORIZE)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable, result.provider_code) == (
        code,
        retryable,
        provider_code,
    )
    assert TOKEN not in result.message


async def test_a_429_passes_on_retry_after(upstream: Upstream, adapter: PerfectCorpAdapter) -> None:
    upstream.poll(
        "colorize",
        httpx.Response(
            429,
            json={"status": 429, "error": "Too Many Requests", "error_code": "RateLimitExceeded"},
            headers={"Retry-After": "12"},
        ),
    )
    result = await adapter.poll(COLORIZE, TASK_ID)
    assert isinstance(result, PollTrouble) and result.retry_after_s == 12.0


async def test_an_unknown_task_status_is_logged_raw_and_read_as_running(
    upstream: Upstream, adapter: PerfectCorpAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.poll("colorize", _ok({"status": "queued"}))
    assert isinstance(await adapter.poll(COLORIZE, TASK_ID), Progress)
    assert "'queued'" in caplog.text


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_raise_provider_unavailable(
    upstream: Upstream, adapter: PerfectCorpAdapter, status: int
) -> None:
    upstream.tasks.return_value = _refused(status, "Internal Server Error", "InternalServerError")
    with pytest.raises(ProviderUnavailable, match=str(status)):
        await adapter.submit(COLORIZE)


async def test_a_failed_upload_raises_provider_unavailable(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    upstream.storage.return_value = httpx.Response(403, text="<Error>SignatureDoesNotMatch</Error>")
    with pytest.raises(ProviderUnavailable, match="upload"):
        await adapter.submit(COLORIZE)
    assert upstream.tasks.call_count == 0


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>502 Bad Gateway</html>"),
        _ok({}),
        _ok({"task_id": 42}),
        httpx.Response(200, json={"status": 200, "result": "SX9ALF1Z"}),
    ],
)
async def test_garbage_task_answers_raise(
    upstream: Upstream, adapter: PerfectCorpAdapter, answer: httpx.Response
) -> None:
    upstream.tasks.return_value = answer
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(COLORIZE)


@pytest.mark.parametrize("files", [[], [{"file_name": "image.jpg"}], "nope"])
async def test_garbage_file_answers_raise(
    upstream: Upstream, adapter: PerfectCorpAdapter, files: object
) -> None:
    upstream.files.side_effect = None
    upstream.files.return_value = _ok({"files": files})
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(COLORIZE)


async def test_timeout_is_upstream_timeout(upstream: Upstream, adapter: PerfectCorpAdapter) -> None:
    upstream.poll("colorize", httpx.ReadTimeout("slow"))  # type: ignore[arg-type]
    with pytest.raises(UpstreamTimeout):
        await adapter.poll(COLORIZE, TASK_ID)


async def test_unbound_operation_is_refused_without_a_request(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    call = _call(Operation.image_restore_face, Colorize(image=IMAGE))
    for result in (await adapter.submit(call), await adapter.poll(call, TASK_ID)):
        assert isinstance(result, Failed) and result.code is ErrorCode.unsupported_operation
    assert upstream.auth.call_count == 0


# styles ----------------------------------------------------------------------------------------


def _groups(*ids: int, next_token: str | None = None) -> httpx.Response:
    groups = [{"id": i, "info": {"title": f"Group {i}"}} for i in ids]
    return _ok({"next_token": next_token, "groups": groups})


def _styles(*ids: int, next_token: str | None = None) -> httpx.Response:
    styles = [
        {"id": i, "info": {"title": f"Style {i}", "thumb": f"{STORAGE}/t/{i}.jpg"}} for i in ids
    ]
    return _ok({"next_token": next_token, "styles": styles})


async def test_styles_walk_groups_and_their_pages(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    groups = upstream.router.get(f"{API}/task/style-group/wig").mock(
        side_effect=[_groups(1, 2, next_token="3")] * 3 + [_groups(3)]
    )
    styles = upstream.router.get(f"{API}/task/style/wig").mock(
        side_effect=[_styles(11, 12, next_token="13"), _styles(13), _styles(21), _styles(31)]
    )
    pages = []
    token: str | None = None
    while True:
        page = await adapter.styles(Operation.image_hairstyle, "wig", 2, token)
        pages.append([style.id for style in page.styles])
        if (token := page.next_token) is None:
            break
    assert pages == [["1:11", "1:12"], ["1:13"], ["2:21"], ["3:31"]]
    assert page.styles[0] == Style(
        id="3:31",
        title="Style 31",
        group_id="3",
        group_title="Group 3",
        thumbnail_url=f"{STORAGE}/t/31.jpg",
    )
    group_queries = [dict(call.request.url.params) for call in groups.calls]
    assert group_queries == [{"page_size": "20"}] * 3 + [{"page_size": "20", "starting_token": "3"}]
    style_queries = [dict(call.request.url.params) for call in styles.calls]
    assert style_queries == [
        {"style_group_id": "1", "page_size": "2"},
        {"style_group_id": "1", "page_size": "2", "starting_token": "13"},
        {"style_group_id": "2", "page_size": "2"},
        {"style_group_id": "3", "page_size": "2"},
    ]


async def test_generator_styles_come_from_text_to_image(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    upstream.router.get(f"{API}/task/style-group/text-to-image").mock(
        return_value=_groups(GROUP_ID)
    )
    upstream.router.get(f"{API}/task/style/text-to-image").mock(return_value=_styles(STYLE_ID))
    page = await adapter.styles(Operation.image_generate, None, 20, None)
    assert [s.id for s in page.styles] == [STYLE] and page.next_token is None


async def test_operations_without_styles_list_none(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    for operation in (Operation.image_age, Operation.image_colorize, Operation.image_upscale):
        page = await adapter.styles(operation, None, 20, None)
        assert page.styles == [] and page.next_token is None
    assert upstream.auth.call_count == 0


@pytest.mark.parametrize("token", ["%%%", "bm90IGpzb24", "eyJnIjogMX0"])
async def test_a_foreign_style_token_is_invalid(adapter: PerfectCorpAdapter, token: str) -> None:
    with pytest.raises(InvalidRequest):
        await adapter.styles(Operation.image_hairstyle, None, 20, token)


async def test_a_refused_style_listing_raises_provider_unavailable(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    upstream.router.get(f"{API}/task/style-group/hair-style").mock(
        return_value=_refused(429, "Too Many Requests", "RateLimitExceeded")
    )
    with pytest.raises(ProviderUnavailable):
        await adapter.styles(Operation.image_hairstyle, "style", 20, None)


# bindings --------------------------------------------------------------------------------------

BINDINGS = PerfectCorpAdapter.bindings
OPERATIONS = {
    Hairstyle: Operation.image_hairstyle,
    Age: Operation.image_age,
    TransferMakeup: Operation.image_transfer_makeup,
    RemoveObject: Operation.image_remove_object,
    Colorize: Operation.image_colorize,
    RemoveBackground: Operation.image_remove_background,
    Upscale: Operation.image_upscale,
    GenerateImage: Operation.image_generate,
}


@pytest.mark.parametrize(
    ("params", "refused"),
    [
        (Hairstyle(image=IMAGE, variant="bangs", style_id=STYLE), None),
        (Hairstyle(image=IMAGE, style_id="22205685004925400"), "style_id"),
        (Hairstyle(image=IMAGE, style_id="long-wave"), "style_id"),
        (RemoveObject(image=IMAGE, mask=IMAGE), None),
        (RemoveObject(image=IMAGE, prompt="the lamp post"), "prompt"),
        (RemoveBackground(image=IMAGE, seed=3), "seed"),
        (Upscale(image=IMAGE, scale=1), None),
        (Upscale(image=IMAGE, scale=4, output_format="jpeg"), None),
        (Upscale(image=IMAGE, scale=8), "scale"),
        (Upscale(image=IMAGE, output_format="png"), "output_format"),
        (GenerateImage(prompt="p", style_id=STYLE, output_format="jpeg"), None),
        (GenerateImage(prompt="p", style_id=STYLE, width=512), "width"),
        (GenerateImage(prompt="p", style_id=STYLE, output_format="png"), "output_format"),
        (GenerateImage(prompt="p", style_id="watercolor"), "style_id"),
    ],
)
def test_bindings_refuse_what_the_document_does_not_offer(
    params: Params, refused: str | None
) -> None:
    assert BINDINGS[OPERATIONS[type(params)]].refuses(params) == refused


def test_limits_and_prices() -> None:
    assert set(BINDINGS) == set(OPERATIONS.values())
    # 100 requests/min per token; a submission is the file call and the task call; polls may
    # queue at most 10 s (the drop) - 3 s (longest poll gap) - 2 s (lateness).
    # and 100 requests per 5 minutes from the address, whatever the token ("egress")
    assert PerfectCorpAdapter.limits == {
        "default": UpstreamLimit(rate_per_s=100 / 60, requests_per_submit=2, poll_wait_s=5.0),
        "egress": UpstreamLimit(
            rate_per_s=100 / 300, requests_per_submit=2, poll_wait_s=5.0, window_s=300.0
        ),
    }
    assert PerfectCorpAdapter.egress_limit == "egress"
    assert {binding.limit for binding in BINDINGS.values()} == {"default"}
    assert {binding.price for binding in BINDINGS.values()} == {50}
