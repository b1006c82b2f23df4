"""The Perfect Corp emulator over ASGI: sign-in and token expiry, uploads, the task lifecycle
and its 10-second drop, request_id de-duplication, style paging, faults, limits, and the
adapter driven against it for every task."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import padding
from PIL import Image
from redis.asyncio import Redis

from app.domain.errors import ErrorCode, ProviderUnavailable
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
from app.providers.base import (
    AdapterConfig,
    Call,
    Credential,
    Failed,
    Media,
    PollResult,
    Progress,
    Submitted,
    Succeeded,
)
from app.providers.perfectcorp import PerfectCorpAdapter
from app.providers.perfectcorp_auth import account, id_token
from app.sandbox import images
from app.sandbox import perfectcorp as emulator
from app.sandbox import perfectcorp_tasks as engine
from app.sandbox.credentials import (
    PERFECTCORP_CLIENT_ID,
    PERFECTCORP_CLIENT_SECRET,
    sandbox_credentials,
)
from app.sandbox.timing import SandboxTiming
from app.store.adapter_state import RedisAdapterState
from tests.sandbox.conftest import BASE
from tests.utils.clock import Clock
from tests.utils.media import marked_mask, marked_photo
from tests.utils.media_source import DictMedia
from tests.utils.sandbox import CONTROL, sandbox_app

ROOT = "/_sandbox/perfectcorp"
API = f"{ROOT}/s2s/v1.0"
JOB_S = 0.05
PHOTO = images.render(120, 90, "jpeg", seed=3)
MASK = images.render(120, 90, "png", seed=4)
CREDENTIAL = Credential(client_id=PERFECTCORP_CLIENT_ID, client_secret=PERFECTCORP_CLIENT_SECRET)


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "POLLING_INTERVAL_MS", 20)


@pytest.fixture
def sandbox_timing() -> SandboxTiming:
    return SandboxTiming(latency_s=0, job_s=JOB_S)


def _config() -> AdapterConfig:
    pool = tuple(Credential(**c) for c in sandbox_credentials("perfectcorp"))
    return AdapterConfig(
        base_url=f"{BASE}{ROOT}", credentials=pool, timeout_s=5, poll_interval_s=0.02
    )


@pytest.fixture
def adapter(sandbox: httpx.AsyncClient, redis_client: Redis) -> PerfectCorpAdapter:
    return PerfectCorpAdapter(sandbox, _config(), RedisAdapterState(redis_client, "perfectcorp"))


# the wire, by hand -----------------------------------------------------------------------------


def _id_token(client_id: str = PERFECTCORP_CLIENT_ID, timestamp_ms: int | None = None) -> str:
    acct = account(Credential(client_id=client_id, client_secret=PERFECTCORP_CLIENT_SECRET))
    return id_token(acct, timestamp_ms)


async def _sign_in(client: httpx.AsyncClient) -> dict[str, str]:
    body = {"client_id": PERFECTCORP_CLIENT_ID, "id_token": _id_token()}
    response = await client.post(f"{API}/client/auth", json=body)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['result']['access_token']}"}


async def _file(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    feature: str,
    content: bytes | None = PHOTO,
    content_type: str = "image/jpeg",
) -> str:
    """A file id, its bytes uploaded as the answer says (unless ``content`` is None)."""
    files = [{"content_type": content_type, "file_name": "photo.jpg"}]
    response = await client.post(f"{API}/file/{feature}", headers=auth, json={"files": files})
    assert response.status_code == 200, response.text
    entry = response.json()["result"]["files"][0]
    if content is not None:
        request = entry["requests"][0]
        put = await client.request(
            request["method"], request["url"], headers=request["headers"], content=content
        )
        assert put.status_code == 200, put.text
    file_id: str = entry["file_id"]
    return file_id


def _body(request_id: int | None, params: dict[str, Any] | None = None, **sets: str) -> Any:
    payload: dict[str, Any] = {"actions": [{"id": 0, "params": params} if params else {"id": 0}]}
    if sets:
        payload["file_sets"] = {key: [file_id] for key, file_id in sets.items()}
    body: dict[str, Any] = {"payload": payload}
    if request_id is not None:
        body["request_id"] = request_id
    return body


async def _run(
    client: httpx.AsyncClient, auth: dict[str, str], feature: str, body: Any
) -> httpx.Response:
    return await client.post(f"{API}/task/{feature}", headers=auth, json=body)


async def _poll(
    client: httpx.AsyncClient, auth: dict[str, str], feature: str, task_id: str
) -> httpx.Response:
    return await client.get(f"{API}/task/{feature}", headers=auth, params={"task_id": task_id})


async def _until_done(
    client: httpx.AsyncClient, auth: dict[str, str], feature: str, task_id: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        response = await _poll(client, auth, feature, task_id)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["result"]
        if result["status"] != "running":
            return result
        await asyncio.sleep(result["polling_interval"] / 1000)
    raise AssertionError("the task never finished")


async def _colorize(client: httpx.AsyncClient, auth: dict[str, str], request_id: int = 0) -> str:
    file_id = await _file(client, auth, "colorize")
    response = await _run(client, auth, "colorize", _body(request_id, src_ids=file_id))
    assert response.status_code == 200, response.text
    task_id: str = response.json()["result"]["task_id"]
    return task_id


async def _arm(client: httpx.AsyncClient, fault: str, count: int = 1) -> None:
    body = {"provider": "perfectcorp", "fault": fault, "count": count}
    assert (await client.post("/_sandbox/faults", json=body, headers=CONTROL)).status_code == 204


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return stats.get("perfectcorp", {"requests": 0, "submissions": 0, "by_endpoint": {}})


def _refusal(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body.keys() == {"status", "error", "error_code"}
    assert (body["status"], body["error_code"]) == (status, code)


def _encoded(content: bytes, fmt: str) -> bytes:
    out = io.BytesIO()
    _decode(content).save(out, format=fmt)
    return out.getvalue()


def _decode(content: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(content))
    picture.load()
    return picture


# sign-in and tokens ------------------------------------------------------------------------------


async def test_sign_in_answers_an_access_token(sandbox: httpx.AsyncClient) -> None:
    body = {"client_id": PERFECTCORP_CLIENT_ID, "id_token": _id_token()}
    response = await sandbox.post(f"{API}/client/auth", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == 200 and answer["result"].keys() == {"access_token"}


def _foreign_token() -> str:
    plain = f"client_id=someone-else&timestamp={int(time.time() * 1000)}".encode()
    acct = account(CREDENTIAL)
    return base64.b64encode(acct.public_key.encrypt(plain, padding.PKCS1v15())).decode()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"client_id": "someone-else", "id_token": _id_token("someone-else")}, 401,
         "InvalidClientId"),
        ({"client_id": PERFECTCORP_CLIENT_ID, "id_token": "bm90IGVuY3J5cHRlZA=="}, 401,
         "InvalidIdToken"),
        ({"client_id": PERFECTCORP_CLIENT_ID, "id_token": _foreign_token()}, 401,
         "InvalidIdToken"),
        ({"client_id": PERFECTCORP_CLIENT_ID,
          "id_token": _id_token(timestamp_ms=int((time.time() - 3600) * 1000))}, 401,
         "InvalidIdToken"),
        ({"client_id": PERFECTCORP_CLIENT_ID}, 400, "InvalidParameters"),
    ],
)  # fmt: skip
async def test_sign_in_refusals(
    sandbox: httpx.AsyncClient, body: dict[str, str], status: int, code: str
) -> None:
    _refusal(await sandbox.post(f"{API}/client/auth", json=body), status, code)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic abc"}]
)
async def test_api_calls_need_a_valid_access_token(
    sandbox: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await sandbox.get(f"{API}/task/style-group/hair-style", headers=headers)
    _refusal(response, 401, "InvalidAccessToken")


async def test_access_tokens_expire_after_their_lifetime(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    auth = await _sign_in(sandbox)
    path = f"{API}/task/style-group/hair-style"
    clock.now += emulator.TOKEN_TTL_S - 1
    assert (await sandbox.get(path, headers=auth)).status_code == 200
    clock.now += 1
    expired = await sandbox.get(path, headers=auth)
    _refusal(expired, 401, "InvalidAccessToken")
    assert expired.json()["error"] == "Access token expired"


async def test_the_adapter_signs_in_again_when_the_shared_token_expires(
    sandbox: httpx.AsyncClient,
    adapter: PerfectCorpAdapter,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(emulator, "TOKEN_TTL_S", 60.0)
    monkeypatch.setattr(engine, "DROP_AFTER_S", 3600.0)
    call = Call("job_1", Operation.image_colorize, Colorize(image=IMAGE), MEDIA)
    submitted = await adapter.submit(call)
    assert isinstance(submitted, Submitted)
    clock.now += 61
    result = await adapter.poll(call, submitted.provider_job_id)
    assert isinstance(result, Succeeded)
    endpoints = (await _stats(sandbox))["by_endpoint"]
    assert endpoints["POST /s2s/v1.0/client/auth"] == 2
    assert endpoints["GET /s2s/v1.0/task/colorize"] == 2  # the 401, then the repeat


# uploads ---------------------------------------------------------------------------------------


async def test_uploads_need_the_headers_the_file_call_gave(sandbox: httpx.AsyncClient) -> None:
    auth = await _sign_in(sandbox)
    files = [{"content_type": "image/png", "file_name": "a.png"}]
    answer = await sandbox.post(f"{API}/file/sod", headers=auth, json={"files": files})
    entry = answer.json()["result"]["files"][0]
    assert entry.keys() == {"content_type", "file_name", "file_id", "requests"}
    request = entry["requests"][0]
    assert request["method"] == "PUT"
    assert request["url"].startswith(f"{BASE}{ROOT}/upload/")
    assert "authorization" not in {k.lower() for k in request["headers"]}

    wrong_type = {**request["headers"], "Content-Type": "image/jpeg"}
    refused = await sandbox.put(request["url"], headers=wrong_type, content=MASK)
    assert refused.status_code == 403 and b"SignatureDoesNotMatch" in refused.content
    unknown = await sandbox.put(f"{ROOT}/upload/nope", headers=request["headers"], content=MASK)
    assert unknown.status_code == 404
    put = await sandbox.put(request["url"], headers=request["headers"], content=MASK)
    assert put.status_code == 200


@pytest.mark.parametrize(
    "files",
    [[], [{"content_type": "image/webp", "file_name": "a.webp"}], [{"content_type": "image/png"}]],
)
async def test_file_calls_refuse_what_the_document_does_not_allow(
    sandbox: httpx.AsyncClient, files: list[dict[str, str]]
) -> None:
    auth = await _sign_in(sandbox)
    response = await sandbox.post(f"{API}/file/colorize", headers=auth, json={"files": files})
    _refusal(response, 400, "InvalidParameters")


async def test_unknown_features_are_404(sandbox: httpx.AsyncClient) -> None:
    auth = await _sign_in(sandbox)
    response = await sandbox.post(f"{API}/file/face-swap", headers=auth, json={"files": []})
    _refusal(response, 404, "NotFound")


# the task lifecycle -----------------------------------------------------------------------------


async def test_a_results_dst_id_is_a_file_for_later_tasks_for_30_days(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    auth = await _sign_in(sandbox)
    task_id = await _colorize(sandbox, auth)
    clock.now += JOB_S
    done = (await _poll(sandbox, auth, "colorize", task_id)).json()["result"]
    dst_id = done["results"][0]["data"][0]["dst_id"]
    before = (await _stats(sandbox))["by_endpoint"]

    chained = await _run(sandbox, auth, "sod", _body(0, src_ids=dst_id))
    assert chained.status_code == 200, chained.text
    clock.now += JOB_S
    cut = (await _poll(sandbox, auth, "sod", chained.json()["result"]["task_id"])).json()
    assert cut["result"]["status"] == "success", cut
    after = (await _stats(sandbox))["by_endpoint"]
    assert after.get("PUT /upload") == before.get("PUT /upload") == 1
    assert sum(n for k, n in after.items() if "/file/" in k) == 1

    no_upload = await sandbox.put(
        f"{BASE}{ROOT}/upload/{dst_id}", headers={"X-Upload-Token": ""}, content=PHOTO
    )
    assert no_upload.status_code == 404
    clock.now += 30 * 24 * 3600 + 1
    auth = await _sign_in(sandbox)
    gone = await _run(sandbox, auth, "sod", _body(1, src_ids=dst_id))
    _refusal(gone, 400, "InvalidParameters")


async def test_a_task_runs_then_succeeds_with_a_result_valid_two_hours(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    auth = await _sign_in(sandbox)
    task_id = await _colorize(sandbox, auth)
    running = (await _poll(sandbox, auth, "colorize", task_id)).json()
    assert running == {"status": 200, "result": {"polling_interval": 20, "status": "running"}}
    clock.now += JOB_S
    done = (await _poll(sandbox, auth, "colorize", task_id)).json()["result"]
    assert done["status"] == "success" and done["polling_interval"] == 20
    [result] = done["results"]
    assert result["id"] == 0 and result["data"][0].keys() == {"dst_id", "url"}
    url = result["data"][0]["url"]
    assert url.startswith(f"{BASE}{ROOT}/results/")

    served = await sandbox.get(url)
    assert served.headers["content-type"] == "image/jpeg"
    assert _decode(served.content).size == (120, 90)
    clock.now += engine.RESULT_TTL_S + 1
    expired = await sandbox.get(url)
    assert expired.status_code == 403 and b"Request has expired" in expired.content


async def test_a_task_not_polled_within_the_window_is_dropped(
    sandbox: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "DROP_AFTER_S", 0.3)
    auth = await _sign_in(sandbox)
    task_id = await _colorize(sandbox, auth)
    assert (await _poll(sandbox, auth, "colorize", task_id)).status_code == 200
    await asyncio.sleep(0.4)
    _refusal(await _poll(sandbox, auth, "colorize", task_id), 400, "InvalidTaskId")
    _refusal(await _poll(sandbox, auth, "colorize", task_id), 400, "InvalidTaskId")


async def test_a_task_polled_within_the_window_lives_on(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "DROP_AFTER_S", 0.3)
    app = sandbox_app(SandboxTiming(job_s=2.0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        auth = await _sign_in(client)
        task_id = await _colorize(client, auth)
        for _ in range(7):  # 1.75 s of a 2 s task, never 0.3 s without a poll
            clock.now += 0.25
            body = (await _poll(client, auth, "colorize", task_id)).json()
            assert body["result"]["status"] == "running"
        clock.now += 0.25
        assert (await _poll(client, auth, "colorize", task_id)).json()["result"]["status"] == (
            "success"
        )


async def test_same_request_id_and_file_is_the_same_task_charged_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(emulator, "PLAN_CREDITS", 1.0)
    app = sandbox_app(SandboxTiming(job_s=JOB_S))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        auth = await _sign_in(client)
        file_id = await _file(client, auth, "colorize")
        first = await _run(client, auth, "colorize", _body(7, src_ids=file_id))
        task_id = first.json()["result"]["task_id"]
        await _until_done(client, auth, "colorize", task_id)  # success: the one credit is spent
        again = await _run(client, auth, "colorize", _body(7, src_ids=file_id))
        assert again.json() == {"status": 200, "result": {"task_id": task_id}}
        assert (await _stats(client))["submissions"] == 1
        other = await _run(client, auth, "colorize", _body(8, src_ids=file_id))
        _refusal(other, 400, "CreditInsufficiency")
        assert (await _stats(client))["submissions"] == 1


async def test_a_new_request_id_reruns_the_same_file(sandbox: httpx.AsyncClient) -> None:
    auth = await _sign_in(sandbox)
    file_id = await _file(sandbox, auth, "colorize")
    ids = set()
    for request_id in (0, 1, 0):
        response = await _run(sandbox, auth, "colorize", _body(request_id, src_ids=file_id))
        ids.add(response.json()["result"]["task_id"])
    assert len(ids) == 2 and (await _stats(sandbox))["submissions"] == 2


async def test_task_ids_are_per_feature(sandbox: httpx.AsyncClient) -> None:
    auth = await _sign_in(sandbox)
    task_id = await _colorize(sandbox, auth)
    _refusal(await _poll(sandbox, auth, "sod", task_id), 400, "InvalidTaskId")
    _refusal(await _poll(sandbox, auth, "colorize", "nope"), 400, "InvalidTaskId")
    response = await sandbox.get(f"{API}/task/colorize", headers=auth)
    _refusal(response, 400, "InvalidParameters")


@pytest.mark.parametrize(
    ("feature", "content_type", "accepted"),
    [
        ("hair-style", "image/jpeg", True),
        ("hair-style", "image/png", False),  # the hairstyle generator: jpg only
        ("hair-vol", "image/png", True),
        # makeup transfer's enum (2259): jpg, jpeg, png, tiff, gif; not the table's heic
        ("mu-trans-rec", "image/jpg", True),
        ("mu-trans-rec", "image/tiff", True),
        ("mu-trans-rec", "image/gif", True),
        ("mu-trans-rec", "image/heic", False),
        ("mu-trans-rec", "image/webp", False),
        # the others' enums: jpg, jpeg, png (2499, 2987, 3228, …)
        ("colorize", "image/heic", False),
        ("enhance", "image/heic", False),
        ("obj-removal", "image/heic", False),
        ("sod", "image/heic", False),
        ("obj-removal", "image/tiff", False),
        ("sod", "image/gif", False),
    ],
)
async def test_file_types_are_those_of_the_upload_calls_enum(
    sandbox: httpx.AsyncClient, feature: str, content_type: str, accepted: bool
) -> None:
    """The file call takes the values its enum lists ("Currently available values are listed in
    the enum"), the hairstyle generator only the JPEG of its table row."""
    auth = await _sign_in(sandbox)
    files = [{"content_type": content_type, "file_name": "photo"}]
    response = await sandbox.post(f"{API}/file/{feature}", headers=auth, json={"files": files})
    assert (response.status_code == 200) is accepted, response.text
    if not accepted:
        _refusal(response, 400, "InvalidParameters")


async def test_makeup_transfer_runs_on_a_tiff_and_a_gif(sandbox: httpx.AsyncClient) -> None:
    """Makeup transfer's file call takes ``image/tiff`` and ``image/gif`` (2259); the engine
    reads what it was given."""
    auth = await _sign_in(sandbox)
    src = await _file(sandbox, auth, "mu-trans-rec", _encoded(PHOTO, "TIFF"), "image/tiff")
    ref = await _file(sandbox, auth, "mu-trans-rec", _encoded(PHOTO, "GIF"), "image/gif")
    response = await _run(sandbox, auth, "mu-trans-rec", _body(0, src_ids=src, ref_ids=ref))
    done = await _until_done(sandbox, auth, "mu-trans-rec", response.json()["result"]["task_id"])
    assert done["status"] == "success", done


@pytest.mark.parametrize(
    ("feature", "content", "content_type", "error"),
    [
        ("colorize", None, "image/jpeg", "error_download_image"),
        ("colorize", b"\xff\xd8\xff not really", "image/jpeg", "error_decode_image"),
        ("colorize", PHOTO + b"\0" * (10 * 1024 * 1024), "image/jpeg", "exceed_max_filesize"),
        # "< 10MB": exactly 10 MB is over
        ("colorize", PHOTO + b"\0" * (10 * 1024 * 1024 - len(PHOTO)), "image/jpeg",
         "exceed_max_filesize"),
        ("hair-vol", images.render(1025, 64, "jpeg"), "image/jpeg", "invalid_parameter"),
        ("hair-vol", images.render(64, 1024, "jpeg"), "image/jpeg", None),
        ("aging", images.render(64, 64, "png", seed=0, alpha=False), "image/png", None),
    ],
)  # fmt: skip
async def test_the_engine_reads_inputs_as_the_document_describes(
    sandbox: httpx.AsyncClient,
    feature: str,
    content: bytes | None,
    content_type: str,
    error: str | None,
) -> None:
    auth = await _sign_in(sandbox)
    file_id = await _file(sandbox, auth, feature, content, content_type)
    params = None
    if feature.startswith("hair"):
        group = engine.CATALOG[feature][0]
        params = {"style_group_id": group.id, "style_ids": [group.styles[0].id]}
    response = await _run(sandbox, auth, feature, _body(0, params, src_ids=file_id))
    done = await _until_done(sandbox, auth, feature, response.json()["result"]["task_id"])
    if error is None:
        assert done["status"] == "success"
    else:
        assert (done["status"], done["error"]) == ("error", error)
        assert "results" not in done


async def test_a_one_colour_face_photo_has_no_face(sandbox: httpx.AsyncClient) -> None:
    auth = await _sign_in(sandbox)
    flat = io.BytesIO()
    Image.new("RGB", (80, 80), (200, 180, 160)).save(flat, format="JPEG")
    file_id = await _file(sandbox, auth, "aging", flat.getvalue())
    response = await _run(sandbox, auth, "aging", _body(0, src_ids=file_id))
    done = await _until_done(sandbox, auth, "aging", response.json()["result"]["task_id"])
    assert (done["status"], done["error"]) == ("error", "error_no_face")


async def test_a_mask_of_another_size_is_invalid(sandbox: httpx.AsyncClient) -> None:
    auth = await _sign_in(sandbox)
    src = await _file(sandbox, auth, "obj-removal")
    mask = await _file(sandbox, auth, "obj-removal", images.render(60, 45, "png"), "image/png")
    response = await _run(sandbox, auth, "obj-removal", _body(0, src_ids=src, mask_ids=mask))
    done = await _until_done(sandbox, auth, "obj-removal", response.json()["result"]["task_id"])
    assert done["error"] == "invalid_parameter"


@pytest.mark.parametrize(
    ("feature", "body"),
    [
        ("colorize", {"payload": {"actions": [{"id": 0}]}}),
        ("colorize", {"request_id": 0, "payload": {"actions": []}}),
        ("colorize", {"request_id": -1, "payload": {"actions": [{"id": 0}]}}),
        ("colorize", {"request_id": 0, "payload": {"actions": [{"id": 0}],
                                                   "file_sets": {"src_ids": ["missing"]}}}),
        ("colorize", ["not", "an", "object"]),
        ("text-to-image", {"request_id": 0, "payload": {"actions": [{"id": 0, "params": {
            "prompt": "fox", "style_group_id": 1, "style_ids": [2]}}]}}),
        ("text-to-image", {"request_id": 0, "payload": {"actions": [{"id": 0, "params": {
            "style_group_id": engine.CATALOG["text-to-image"][0].id,
            "style_ids": [engine.CATALOG["text-to-image"][0].styles[0].id]}}]}}),
    ],
)  # fmt: skip
async def test_task_bodies_the_document_does_not_allow_are_400(
    sandbox: httpx.AsyncClient, feature: str, body: Any
) -> None:
    auth = await _sign_in(sandbox)
    _refusal(await _run(sandbox, auth, feature, body), 400, "InvalidParameters")
    assert (await _stats(sandbox))["submissions"] == 0


@pytest.mark.parametrize(
    ("params", "ext"),
    [({"scale": 3}, None), ({}, None), ({"scale": 2}, "png"), ({"scale": 2, "mode": "x"}, None)],
)
async def test_enhance_takes_a_scale_of_1_2_or_4_and_jpg_or_webp(
    sandbox: httpx.AsyncClient, params: dict[str, Any], ext: str | None
) -> None:
    auth = await _sign_in(sandbox)
    file_id = await _file(sandbox, auth, "enhance")
    body = _body(0, params or None, src_ids=file_id)
    if ext:
        body["payload"]["output_ext"] = ext
    _refusal(await _run(sandbox, auth, "enhance", body), 400, "InvalidParameters")


# styles ----------------------------------------------------------------------------------------


async def _walk(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, **query: Any
) -> list[Any]:
    items: list[Any] = []
    token = None
    while True:
        params = {**query, **({"starting_token": token} if token else {})}
        response = await client.get(path, headers=auth, params=params)
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        items += result.get("groups", result.get("styles"))
        if (token := result["next_token"]) is None:
            return items


async def test_style_groups_and_styles_page_through_the_catalog(
    sandbox: httpx.AsyncClient,
) -> None:
    auth = await _sign_in(sandbox)
    groups = await _walk(sandbox, auth, f"{API}/task/style-group/hair-style", page_size=4)
    catalog = engine.CATALOG["hair-style"]
    assert [g["id"] for g in groups] == [g.id for g in catalog]
    assert groups[0] == {"id": catalog[0].id, "info": {"title": "Women's"}}
    styles = await _walk(
        sandbox, auth, f"{API}/task/style/hair-style", page_size=2, style_group_id=catalog[3].id
    )
    assert [s["info"]["title"] for s in styles] == [s.title for s in catalog[3].styles]
    thumb = await sandbox.get(styles[0]["info"]["thumb"])
    assert _decode(thumb.content).size == (64, 64)


async def test_a_default_page_holds_up_to_20(sandbox: httpx.AsyncClient) -> None:
    auth = await _sign_in(sandbox)
    response = await sandbox.get(f"{API}/task/style-group/text-to-image", headers=auth)
    result = response.json()["result"]
    assert len(result["groups"]) == len(engine.CATALOG["text-to-image"])
    assert result["next_token"] is None


@pytest.mark.parametrize(
    ("path", "query", "status", "code"),
    [
        ("style-group/hair-style", {"page_size": 0}, 400, "InvalidParameters"),
        ("style-group/hair-style", {"page_size": 21}, 400, "InvalidParameters"),
        ("style-group/hair-style", {"page_size": "many"}, 400, "InvalidParameters"),
        ("style-group/hair-style", {"starting_token": "13045969587275114"}, 400,
         "InvalidParameters"),
        ("style/hair-style", {}, 400, "InvalidParameters"),
        ("style/wig", {"style_group_id": engine.CATALOG["hair-style"][0].id}, 400,
         "InvalidParameters"),
        ("style-group/aging", {}, 404, "NotFound"),
        ("style/colorize", {"style_group_id": 1}, 404, "NotFound"),
    ],
)  # fmt: skip
async def test_style_listing_refusals(
    sandbox: httpx.AsyncClient, path: str, query: dict[str, Any], status: int, code: str
) -> None:
    auth = await _sign_in(sandbox)
    response = await sandbox.get(f"{API}/task/{path}", headers=auth, params=query)
    _refusal(response, status, code)


# faults and limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("http_500", 500, "InternalServerError"),
        ("rate_limit", 429, "RateLimitExceeded"),
        ("no_credits", 400, "CreditInsufficiency"),
    ],
)
async def test_faults_on_submission_answer_the_documented_refusals(
    sandbox: httpx.AsyncClient, fault: str, status: int, code: str
) -> None:
    auth = await _sign_in(sandbox)
    file_id = await _file(sandbox, auth, "colorize")
    await _arm(sandbox, fault)
    _refusal(await _run(sandbox, auth, "colorize", _body(0, src_ids=file_id)), status, code)
    assert (await _stats(sandbox))["submissions"] == 0
    assert (await _run(sandbox, auth, "colorize", _body(0, src_ids=file_id))).status_code == 200


async def test_garbage_is_a_200_that_is_not_json(sandbox: httpx.AsyncClient) -> None:
    auth = await _sign_in(sandbox)
    task_id = await _colorize(sandbox, auth)
    await _arm(sandbox, "garbage")
    response = await _poll(sandbox, auth, "colorize", task_id)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")


async def test_timeout_never_answers(sandbox: httpx.AsyncClient) -> None:
    auth = await _sign_in(sandbox)
    await _arm(sandbox, "timeout")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            sandbox.get(f"{API}/task/style-group/wig", headers=auth), timeout=0.2
        )


@pytest.mark.parametrize(
    ("fault", "error"), [("no_face", "error_no_face"), ("blocked", "error_nsfw_content_detected")]
)
@pytest.mark.parametrize("when", ["submission", "poll"])
async def test_no_face_and_blocked_end_the_task_in_error(
    sandbox: httpx.AsyncClient, fault: str, error: str, when: str
) -> None:
    auth = await _sign_in(sandbox)
    if when == "submission":
        await _arm(sandbox, fault)
    task_id = await _colorize(sandbox, auth)
    if when == "poll":
        await _arm(sandbox, fault)
    done = await _until_done(sandbox, auth, "colorize", task_id)
    assert (done["status"], done["error"]) == ("error", error)


async def test_100_requests_per_minute_per_token(
    sandbox: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "REQUESTS_PER_MINUTE", 3)
    auth = await _sign_in(sandbox)
    path = f"{API}/task/style-group/wig"
    assert [(await sandbox.get(path, headers=auth)).status_code for _ in range(3)] == [200] * 3
    _refusal(await sandbox.get(path, headers=auth), 429, "RateLimitExceeded")
    other = await _sign_in(sandbox)
    assert (await sandbox.get(path, headers=other)).status_code == 200
    clock.now += 60
    assert (await sandbox.get(path, headers=auth)).status_code == 200
    assert (await _stats(sandbox))["over_limit"] == 1


async def test_sign_ins_are_limited_per_address(
    sandbox: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "REQUESTS_PER_IP", 1)
    await _sign_in(sandbox)
    body = {"client_id": PERFECTCORP_CLIENT_ID, "id_token": _id_token()}
    _refusal(await sandbox.post(f"{API}/client/auth", json=body), 429, "RateLimitExceeded")


async def test_every_request_from_one_address_counts_whatever_the_token(
    sandbox: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Each IP address is allowed a maximum of 100 requests per 5 minutes … Both conditions
    must be met": sign-ins and calls on any token share the address's window."""
    monkeypatch.setattr(emulator, "REQUESTS_PER_IP", 4)
    first = await _sign_in(sandbox)
    second = await _sign_in(sandbox)
    path = f"{API}/task/style-group/wig"
    assert (await sandbox.get(path, headers=first)).status_code == 200
    assert (await sandbox.get(path, headers=second)).status_code == 200
    _refusal(await sandbox.get(path, headers=first), 429, "RateLimitExceeded")
    _refusal(await sandbox.get(path, headers=second), 429, "RateLimitExceeded")
    clock.now += 299
    _refusal(await sandbox.get(path, headers=first), 429, "RateLimitExceeded")
    clock.now += 1
    assert (await sandbox.get(path, headers=second)).status_code == 200
    assert (await _stats(sandbox))["over_limit"] == 3


# the adapter against the emulator ---------------------------------------------------------------

IMAGE = ImageInput(file_id="file_photo")
MEDIA = DictMedia(
    {
        "file_photo": Media(PHOTO, "image/jpeg"),
        "file_look": Media(images.render(120, 90, "jpeg", seed=9), "image/jpeg"),
        "file_mask": Media(MASK, "image/png"),
        "file_webp": Media(images.render(120, 90, "webp", seed=5), "image/webp"),
    }
)


def _style(feature: str) -> str:
    group = engine.CATALOG[feature][-1]
    return f"{group.id}:{group.styles[-1].id}"


async def _drive(adapter: PerfectCorpAdapter, call: Call) -> PollResult:
    submitted = await adapter.submit(call)
    if not isinstance(submitted, Submitted):
        return submitted
    result: PollResult = Progress(poll_after_s=submitted.poll_after_s)
    deadline = time.monotonic() + 10
    while isinstance(result, Progress):
        assert time.monotonic() < deadline, "the task never finished"
        assert result.poll_after_s <= 3.0
        await asyncio.sleep(result.poll_after_s)
        result = await adapter.poll(call, submitted.provider_job_id)
    return result


def _hair(variant: str, feature: str) -> tuple[Operation, Params]:
    params = Hairstyle(image=IMAGE, variant=variant, style_id=_style(feature))
    return Operation.image_hairstyle, params


TASKS: list[tuple[Operation, Params, int, tuple[int, int], str, str]] = [
    (*_hair("style", "hair-style"), 1, (120, 90), "JPEG", "RGB"),
    (*_hair("wig", "wig"), 1, (120, 90), "JPEG", "RGB"),
    (*_hair("extension", "hair-ext"), 1, (120, 90), "JPEG", "RGB"),
    (*_hair("bangs", "hair-bang"), 1, (120, 90), "JPEG", "RGB"),
    (*_hair("volume", "hair-vol"), 1, (120, 90), "JPEG", "RGB"),
    (Operation.image_age, Age(image=IMAGE), 5, (120, 90), "JPEG", "RGB"),
    (Operation.image_transfer_makeup,
     TransferMakeup(image=IMAGE, reference=ImageInput(file_id="file_look")), 1, (120, 90),
     "JPEG", "RGB"),
    (Operation.image_remove_object,
     RemoveObject(image=IMAGE, mask=ImageInput(file_id="file_mask")), 1, (120, 90), "JPEG",
     "RGB"),
    (Operation.image_colorize, Colorize(image=ImageInput(file_id="file_webp")), 1, (120, 90),
     "JPEG", "RGB"),
    (Operation.image_remove_background, RemoveBackground(image=IMAGE), 1, (120, 90), "PNG",
     "RGBA"),
    (Operation.image_upscale, Upscale(image=IMAGE), 1, (240, 180), "JPEG", "RGB"),
    (Operation.image_upscale, Upscale(image=IMAGE, scale=4, output_format="webp"), 1,
     (480, 360), "WEBP", "RGB"),
    (Operation.image_generate,
     GenerateImage(prompt="a red fox in the snow", style_id=_style("text-to-image")), 1,
     (1024, 1024), "JPEG", "RGB"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "params", "count", "size", "fmt", "mode"),
    TASKS,
    ids=[f"{op.value}-{getattr(p, 'variant', '')}{n}" for n, (op, p, *_) in enumerate(TASKS)],
)
async def test_the_adapter_runs_every_task_to_decodable_images(
    sandbox: httpx.AsyncClient,
    adapter: PerfectCorpAdapter,
    operation: Operation,
    params: Params,
    count: int,
    size: tuple[int, int],
    fmt: str,
    mode: str,
) -> None:
    result = await _drive(adapter, Call("job_1", operation, params, MEDIA))
    assert isinstance(result, Succeeded), result
    assert len(result.files) == count
    for output in result.files:
        picture = _decode(output.content)
        assert (picture.format, picture.mode, picture.size) == (fmt, mode, size)
        assert output.content_type == f"image/{fmt.lower()}"
    if operation is Operation.image_age:
        assert result.data == {"estimated_age": 32, "ages": [10, 20, 40, 50, 60]}
    assert (await _stats(sandbox))["submissions"] == 1


async def test_a_mask_over_a_turned_photos_stored_pixels_is_taken_by_the_engine(
    adapter: PerfectCorpAdapter,
) -> None:
    """A photo stored 400×300 with EXIF orientation 6 and an untagged mask of its stored shape:
    both go upright at 300×400, so the engine finds the mask the size of its image."""
    media = DictMedia(
        {
            "file_photo": Media(marked_photo(400, 300, 6), "image/jpeg"),
            "file_mask": Media(marked_mask(400, 300), "image/png"),
        }
    )
    params = RemoveObject(image=IMAGE, mask=ImageInput(file_id="file_mask"))
    result = await _drive(adapter, Call("job_1", Operation.image_remove_object, params, media))
    assert isinstance(result, Succeeded), result
    assert _decode(result.files[0].content).size == (300, 400)


async def test_the_adapter_lists_every_style_and_runs_one(
    adapter: PerfectCorpAdapter,
) -> None:
    listed = []
    token = None
    while True:
        page = await adapter.styles(Operation.image_hairstyle, "bangs", 2, token)
        listed += page.styles
        if (token := page.next_token) is None:
            break
    catalog = engine.CATALOG["hair-bang"]
    assert [s.id for s in listed] == [f"{g.id}:{s.id}" for g in catalog for s in g.styles]
    assert listed[0].group_title == catalog[0].title and listed[0].thumbnail_url
    call = Call(
        "job_1",
        Operation.image_hairstyle,
        Hairstyle(image=IMAGE, variant="bangs", style_id=listed[-1].id),
        MEDIA,
    )
    assert isinstance(await _drive(adapter, call), Succeeded)


@pytest.mark.parametrize(
    ("fault", "code", "retryable"),
    [
        ("no_face", ErrorCode.no_face_detected, False),
        ("blocked", ErrorCode.content_blocked, False),
        ("rate_limit", ErrorCode.provider_rate_limited, True),
        # CreditInsufficiency (a 400): the document names no error_code, so it is kept
        ("no_credits", ErrorCode.upstream_failed, True),
    ],
)
async def test_the_adapter_maps_the_emulators_faults(
    sandbox: httpx.AsyncClient,
    adapter: PerfectCorpAdapter,
    fault: str,
    code: ErrorCode,
    retryable: bool,
) -> None:
    await _arm(sandbox, fault)
    result = await _drive(adapter, Call("job_1", Operation.image_age, Age(image=IMAGE), MEDIA))
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (code, retryable)


@pytest.mark.parametrize("fault", ["http_500", "garbage"])
async def test_the_adapter_raises_on_server_errors_and_garbage(
    sandbox: httpx.AsyncClient, adapter: PerfectCorpAdapter, fault: str
) -> None:
    await _arm(sandbox, fault)
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(Call("job_1", Operation.image_colorize, Colorize(image=IMAGE), MEDIA))


async def test_a_dropped_task_fails_and_the_retry_runs_anew(
    sandbox: httpx.AsyncClient, adapter: PerfectCorpAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "DROP_AFTER_S", 0.3)
    call = Call("job_1", Operation.image_colorize, Colorize(image=IMAGE), MEDIA)
    submitted = await adapter.submit(call)
    assert isinstance(submitted, Submitted)
    await asyncio.sleep(0.4)
    lost = await adapter.poll(call, submitted.provider_job_id)
    assert isinstance(lost, Failed)
    assert (lost.code, lost.retryable, lost.provider_code) == (
        ErrorCode.upstream_failed,
        True,
        "InvalidTaskId",
    )
    assert isinstance(await _drive(adapter, call), Succeeded)
    stats = await _stats(sandbox)
    assert stats["submissions"] == 2
    assert stats["by_endpoint"]["POST /s2s/v1.0/file/colorize"] == 1


async def test_a_resumed_attempt_is_the_same_task_charged_once(
    sandbox: httpx.AsyncClient, separate_clients: list[Redis]
) -> None:
    """Worker A submits and crashes before recording the task; worker B resubmits."""
    call = Call("job_1", Operation.image_colorize, Colorize(image=IMAGE), MEDIA)
    first, second = (
        PerfectCorpAdapter(sandbox, _config(), RedisAdapterState(r, "perfectcorp"))
        for r in separate_clients[:2]
    )
    one, two = await first.submit(call), await second.submit(call)
    assert isinstance(one, Submitted) and one == two
    assert isinstance(await _drive(second, call), Succeeded)
    stats = await _stats(sandbox)
    assert stats["submissions"] == 1
    assert stats["by_endpoint"]["PUT /upload"] == 1


async def test_two_processes_sharing_redis_sign_in_once(
    sandbox: httpx.AsyncClient, separate_clients: list[Redis]
) -> None:
    adapters = [
        PerfectCorpAdapter(sandbox, _config(), RedisAdapterState(r, "perfectcorp"))
        for r in separate_clients[:2]
    ]
    calls = [
        Call(f"job_{n}", Operation.image_colorize, Colorize(image=IMAGE), MEDIA) for n in range(2)
    ]
    results = await asyncio.gather(*(a.submit(c) for a, c in zip(adapters, calls, strict=True)))
    assert all(isinstance(r, Submitted) for r in results)
    assert isinstance(await _drive(adapters[1], calls[0]), Succeeded)
    endpoints = (await _stats(sandbox))["by_endpoint"]
    assert endpoints["POST /s2s/v1.0/client/auth"] == 1
