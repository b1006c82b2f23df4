"""The Everypixel emulator over ASGI: Basic auth, the per-second rate limits (502), analyses
derived from the picture, the task queue and lifecycle, callbacks, faults, counters, and the
adapter driven against it for every binding."""

from __future__ import annotations

import asyncio
import io
import json
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from PIL import Image

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.media import AudioInput, ImageInput, VideoInput
from app.domain.operations import (
    Faces,
    ImageCaption,
    ImageKeywords,
    ImageQuality,
    Lipsync,
    Operation,
    Params,
    Speech,
    SwapFace,
    SwapFaceVideo,
    VideoKeywords,
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
    Voice,
)
from app.providers.everypixel import EverypixelAdapter
from app.sandbox import av, images
from app.sandbox import everypixel as emulator  # noqa: F401  (the one ``clock`` moves)
from app.sandbox.credentials import EVERYPIXEL_KEY_PAIRS
from app.sandbox.everypixel_wire import video
from app.sandbox.timing import ARRIVAL, SandboxTiming
from tests.sandbox.conftest import BASE
from tests.utils.clock import Clock
from tests.utils.media import png_bytes
from tests.utils.media_source import DictMedia
from tests.utils.sandbox import CONTROL, sandbox_app

ROOT = "/_sandbox/everypixel"
PAIRS = [httpx.BasicAuth(i, s) for i, s in EVERYPIXEL_KEY_PAIRS]
AUTH = PAIRS[0]
JOB_S = 0.05
PHOTO = images.render(320, 200, "png", seed=3)
JPEG = images.render(300, 300, "jpeg", seed=8)
FLAT = png_bytes(64, 64, color=(200, 30, 30))
CLIP = av.mp4_bytes(3.0, 96, 64)
SPEECH = av.wav_bytes(2.0)
HOOK = "https://hooks.test/everypixel"


@pytest.fixture
def sandbox_timing() -> SandboxTiming:
    return SandboxTiming(latency_s=0, job_s=JOB_S)


@pytest.fixture
def outside() -> Iterator[respx.MockRouter]:
    """Where URL inputs live and callbacks land; the emulator reaches them with httpx."""
    with respx.mock(assert_all_called=False) as router:
        router.get("https://files.test/photo.png").respond(200, content=PHOTO)
        router.get("https://files.test/flat.png").respond(200, content=FLAT)
        router.get("https://files.test/clip.mp4").respond(200, content=CLIP)
        router.get("https://files.test/speech.wav").respond(200, content=SPEECH)
        router.get("https://files.test/gone.png").respond(404)
        router.post(HOOK, name="hook").respond(200)
        yield router


def _upload(content: bytes = PHOTO, name: str = "photo.png") -> dict[str, Any]:
    return {"data": (name, content)}


async def _analyse(
    client: httpx.AsyncClient,
    endpoint: str,
    content: bytes = PHOTO,
    auth: httpx.BasicAuth = AUTH,
    /,
    **params: str | int | float,
) -> httpx.Response:
    return await client.post(
        f"{ROOT}/v1/{endpoint}", params=params, files=_upload(content), auth=auth
    )


async def _create(
    client: httpx.AsyncClient,
    model: str,
    files: dict[str, Any] | None = None,
    auth: httpx.BasicAuth = AUTH,
    /,
    **fields: str,
) -> httpx.Response:
    return await client.post(f"{ROOT}/v1/{model}/create", files=files, data=fields, auth=auth)


async def _speech(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    return await _create(client, "tts", voice="jack", text="Hello there, world.", **fields)


def _swap_files(source: bytes = PHOTO, target: bytes = JPEG) -> dict[str, Any]:
    return {"source": ("source.png", source), "target": ("target.jpg", target)}


async def _status(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await client.get(f"{ROOT}/v1/status", params={"task_id": task_id}, auth=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _until_done(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body = await _status(client, task_id)
        if body["status"] not in ("PENDING", "STARTED"):
            return body
        await asyncio.sleep(0.02)
    raise AssertionError("the task never finished")


async def _arm(client: httpx.AsyncClient, fault: str, count: int = 1) -> None:
    body = {"provider": "everypixel", "fault": fault, "count": count}
    assert (await client.post("/_sandbox/faults", json=body, headers=CONTROL)).status_code == 204


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    empty = {"requests": 0, "submissions": 0, "over_limit": 0, "by_endpoint": {}}
    return stats.get("everypixel", empty)


def _wav_seconds(content: bytes) -> float:
    with wave.open(io.BytesIO(content)) as wav:
        frames: int = wav.getnframes()
        rate: int = wav.getframerate()
    return frames / rate


# auth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        None,
        httpx.BasicAuth("sandbox-everypixel-id-0", "wrong"),
        httpx.BasicAuth("sandbox-everypixel-id-0", "sandbox-everypixel-secret-1"),
        httpx.BasicAuth("someone", "sandbox-everypixel-secret-0"),
    ],
)
async def test_a_missing_or_wrong_key_pair_is_401(
    sandbox: httpx.AsyncClient, auth: httpx.BasicAuth | None
) -> None:
    response = await sandbox.get(f"{ROOT}/v1/keywords", params={"url": "x"}, auth=auth)
    assert response.status_code == 401
    assert response.json() == {"status": "error", "message": "Invalid client credentials."}
    assert response.headers["www-authenticate"].startswith("Basic")
    assert (await _stats(sandbox))["submissions"] == 0


async def test_a_bearer_token_is_not_basic_auth(sandbox: httpx.AsyncClient) -> None:
    client_id, secret = EVERYPIXEL_KEY_PAIRS[0]
    headers = {"Authorization": f"Bearer {client_id}:{secret}"}
    response = await sandbox.get(f"{ROOT}/v1/tts/voices", headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize("pair", range(4))
async def test_every_key_pair_of_the_account_works(sandbox: httpx.AsyncClient, pair: int) -> None:
    response = await _analyse(sandbox, "quality", PHOTO, PAIRS[pair])
    assert response.status_code == 200, response.text


# rate limits -----------------------------------------------------------------------------------


async def test_more_than_30_requests_in_a_second_is_502(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    answers = [await _analyse(sandbox, "quality") for _ in range(30)]
    assert {r.status_code for r in answers} == {200}
    refused = await _analyse(sandbox, "quality")
    assert refused.status_code == 502
    assert refused.json() == {
        "status": "error",
        "message": "Too many simultaneous requests: at most 30 requests per second.",
    }
    other_pair = await _analyse(sandbox, "quality", PHOTO, PAIRS[1])
    other_endpoint = await _analyse(sandbox, "quality_ugc")
    assert (other_pair.status_code, other_endpoint.status_code) == (200, 200)
    clock.now += 1.0
    assert (await _analyse(sandbox, "quality")).status_code == 200
    stats = await _stats(sandbox)
    assert (stats["over_limit"], stats["submissions"]) == (1, 33)


async def test_the_window_slides(sandbox: httpx.AsyncClient, clock: Clock) -> None:
    for _ in range(15):
        assert (await _analyse(sandbox, "keywords")).status_code == 200
    clock.now += 0.5
    for _ in range(15):
        assert (await _analyse(sandbox, "keywords")).status_code == 200
    clock.now += 0.7  # the first 15 have left the window; the last 15 have not
    codes = [(await _analyse(sandbox, "keywords")).status_code for _ in range(16)]
    assert codes == [200] * 15 + [502]
    assert (await _stats(sandbox))["over_limit"] == 1


@pytest.fixture
async def read_at(clock: Clock) -> AsyncIterator[Callable[[float], Awaitable[httpx.Response]]]:
    """A keywords request the server read (its first bytes) at the given time, as
    ``app.serving`` records it, whatever the clock says when its handler runs."""
    emulators = sandbox_app(SandboxTiming())

    async def stamped(scope: Any, receive: Any, send: Any) -> None:
        stamp = dict(scope["headers"]).get(b"x-read-at")
        if stamp is not None:
            scope["extensions"] = {ARRIVAL: {"monotonic": float(stamp)}}
        await emulators(scope, receive, send)

    transport = httpx.ASGITransport(app=stamped)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:

        async def send(at: float) -> httpx.Response:
            return await client.post(
                f"{ROOT}/v1/keywords",
                files=_upload(PHOTO),
                auth=AUTH,
                headers={"x-read-at": repr(at)},
            )

        yield send


async def test_requests_are_dated_when_the_server_read_them(
    read_at: Callable[[float], Awaitable[httpx.Response]], clock: Clock
) -> None:
    """A client sending 25 a second is within the rule even when a stalled event loop gets
    to the handlers of 60 of its requests at one moment (the clock does not move here)."""
    codes = [(await read_at(clock.now + i * 0.04)).status_code for i in range(60)]
    assert codes == [200] * 60
    # 31 read within one second are one too many, however they are handled
    later = clock.now + 10
    codes = [(await read_at(later + i * 0.03)).status_code for i in range(31)]
    assert codes == [200] * 30 + [502]


async def test_a_request_handled_late_counts_in_every_window_of_its_date(
    read_at: Callable[[float], Awaitable[httpx.Response]], clock: Clock
) -> None:
    start = clock.now
    codes = [(await read_at(start + 0.5 + i * 0.01)).status_code for i in range(30)]
    assert codes == [200] * 30
    # read before those 30 but handled after them: the second ending at the 30th's date
    # would hold 31
    assert (await read_at(start + 0.2)).status_code == 502
    # read more than a second before the 30th: no window holds it and them all
    assert (await read_at(start - 0.6)).status_code == 200


@pytest.mark.parametrize(("endpoint", "limit"), [("faces", 10), ("image_captioning", 1)])
async def test_slower_endpoints_have_their_documented_rate(
    sandbox: httpx.AsyncClient, clock: Clock, endpoint: str, limit: int
) -> None:
    codes = [(await _analyse(sandbox, endpoint)).status_code for _ in range(limit + 2)]
    assert codes == [200] * limit + [502, 502]
    assert (await _stats(sandbox))["over_limit"] == 2


async def test_video_keywords_allow_one_request_a_second(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    first = await _analyse(sandbox, "video_keywords", CLIP)
    second = await _analyse(sandbox, "video_keywords", CLIP)
    assert (first.status_code, second.status_code) == (200, 502)
    assert "at most 1 requests per second" in second.json()["message"]


async def test_status_polls_count_against_their_tasks_endpoint(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    task_id = (await _speech(sandbox)).json()["task_id"]
    for _ in range(29):
        response = await sandbox.get(f"{ROOT}/v1/status", params={"task_id": task_id}, auth=AUTH)
        assert response.status_code == 200
    refused = await sandbox.get(f"{ROOT}/v1/status", params={"task_id": task_id}, auth=AUTH)
    assert refused.status_code == 502
    assert (await _analyse(sandbox, "keywords")).status_code == 200


# analyses --------------------------------------------------------------------------------------


async def test_keywords_honour_count_language_and_colors(sandbox: httpx.AsyncClient) -> None:
    response = await _analyse(sandbox, "keywords", num_keywords=10, colors="True", num_colors=4)
    body = response.json()
    assert body["status"] == "ok"
    assert len(body["keywords"]) == 10
    scores = [k["score"] for k in body["keywords"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert body["keywords"][0]["keyword"] == "horizontal"  # 320×200
    assert 1 <= len(body["colors"]) <= 4
    for color in body["colors"]:
        assert color.keys() == {"name", "rgb", "hex", "percentage"}
        assert color["hex"] == "#{:02x}{:02x}{:02x}".format(*color["rgb"])
    assert sum(c["percentage"] for c in body["colors"]) == pytest.approx(100, abs=0.1)

    german = (await _analyse(sandbox, "keywords", num_keywords=10, lang="de")).json()
    assert german["keywords"][0]["keyword"] == "horizontal"
    assert [k["score"] for k in german["keywords"]] == scores
    assert {k["keyword"] for k in german["keywords"]} != {k["keyword"] for k in body["keywords"]}
    assert "colors" not in german


async def test_keywords_default_cap_and_threshold(sandbox: httpx.AsyncClient) -> None:
    default = (await _analyse(sandbox, "keywords")).json()["keywords"]
    capped = (await _analyse(sandbox, "keywords", num_keywords=80)).json()["keywords"]
    high = (await _analyse(sandbox, "keywords", num_keywords=50, threshold=0.5)).json()["keywords"]
    assert len(default) == 12
    assert len(capped) == 50 and len({k["keyword"] for k in capped}) == 50
    assert high == [k for k in capped if k["score"] >= 0.5]
    assert 0 < len(high) < 50


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": "high"}, "Threshold must be float."),
        ({"threshold": "1.5"}, "Threshold must be between 0.0 and 1.0."),
        ({"num_keywords": "ten"}, "Num_keywords must be integer."),
        ({"lang": "ja"}, "Lang must be one of: en, ru, es, fr, de, pt, it."),
    ],
)
async def test_invalid_keyword_options_are_400(
    sandbox: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    response = await _analyse(sandbox, "keywords", **params)
    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": message}
    assert (await _stats(sandbox))["submissions"] == 0


async def test_a_url_input_is_downloaded(
    sandbox: httpx.AsyncClient, outside: respx.MockRouter
) -> None:
    by_url = await sandbox.get(
        f"{ROOT}/v1/keywords", params={"url": "https://files.test/photo.png"}, auth=AUTH
    )
    uploaded = await _analyse(sandbox, "keywords")
    assert by_url.status_code == 200
    assert by_url.json() == uploaded.json(), "the same picture gets the same answer"


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 400, "Image URL is missing."),
        ({"url": "https://files.test/gone.png"}, 400, "Could not download the image (HTTP 404)."),
        ({"url": "ftp://files.test/photo.png"}, 400, "Url must be a URL."),
    ],
)
async def test_missing_or_unreachable_images_are_400(
    sandbox: httpx.AsyncClient,
    outside: respx.MockRouter,
    params: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = await sandbox.get(f"{ROOT}/v1/faces", params=params, auth=AUTH)
    assert (response.status_code, response.json()["message"]) == (status, message)


async def test_captions_have_the_documented_lengths(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    ranges = {"short": (3, 6), "normal": (7, 12), "long": (13, 30)}
    for picture in (PHOTO, FLAT):
        for length, (low, high) in ranges.items():
            clock.now += 1  # one caption a second
            body = (await _analyse(sandbox, "image_captioning", picture, caption_len=length)).json()
            assert body["status"] is True
            assert low <= len(body["result"]["caption"].split()) <= high, body
    clock.now += 1
    default = (await _analyse(sandbox, "image_captioning")).json()
    clock.now += 1
    normal = (await _analyse(sandbox, "image_captioning", caption_len="normal")).json()
    assert default == normal


async def test_faces_are_inside_the_picture_and_a_flat_one_has_none(
    sandbox: httpx.AsyncClient,
) -> None:
    body = (await _analyse(sandbox, "faces")).json()
    assert body["status"] == "ok" and body["faces"]
    for face in body["faces"]:
        x1, y1, x2, y2 = face["bbox"]
        assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 200
        assert 0 < face["score"] <= 1 and 0 < face["age"] < 100
        assert face["class"].startswith("Age - ")
    assert (await _analyse(sandbox, "faces", FLAT)).json() == {"faces": [], "status": "ok"}


async def test_quality_scores_and_ugc_classes(sandbox: httpx.AsyncClient) -> None:
    stock = (await _analyse(sandbox, "quality", JPEG)).json()
    ugc = (await _analyse(sandbox, "quality_ugc", JPEG)).json()
    assert stock["quality"].keys() == {"score"} and 0 < stock["quality"]["score"] < 1
    assert ugc["quality"]["class"] == min(5, 1 + int(ugc["quality"]["score"] * 5))
    flat = (await _analyse(sandbox, "quality_ugc", FLAT)).json()
    assert flat["quality"]["score"] < 0.1 and flat["quality"]["class"] == 1


@pytest.mark.parametrize("endpoint", ["image_captioning", "faces", "quality", "quality_ugc"])
async def test_jpeg_png_only_endpoints_refuse_webp(
    sandbox: httpx.AsyncClient, endpoint: str
) -> None:
    """ "An image (JPEG or PNG)" (captioning, faces), "Supported image formats are JPEG and
    PNG" (quality, both models); keywording names no type."""
    webp = images.render(50, 50, "webp")
    refused = await _analyse(sandbox, endpoint, webp)
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("Unsupported file format")
    assert (await _analyse(sandbox, "keywords", webp)).status_code == 200


async def test_video_keywords_read_the_clip(sandbox: httpx.AsyncClient, clock: Clock) -> None:
    body = (await _analyse(sandbox, "video_keywords", CLIP, num_keywords=5, lang="de")).json()
    assert body["status"] == "ok" and len(body["keywords"]) == 5
    assert body["keywords"][0]["keyword"] == "Horizontal"
    clock.now += 1
    refused = await _analyse(sandbox, "video_keywords", PHOTO)
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("Unsupported file format")


async def test_an_upload_over_100_mb_is_413(sandbox: httpx.AsyncClient, clock: Clock) -> None:
    response = await _analyse(sandbox, "video_keywords", CLIP + b"\0" * (100 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json() == {
        "status": "error",
        "message": "File is too large. Maximum size is 100 MB.",
    }


# tasks -----------------------------------------------------------------------------------------


async def test_speech_lifecycle_and_wav_result(sandbox: httpx.AsyncClient, clock: Clock) -> None:
    created = await _speech(sandbox, title="greeting")
    assert created.status_code == 201
    body = created.json()
    assert body.keys() == {"task_id", "status", "eta", "queue", "result"}
    assert (body["status"], body["queue"], body["result"]) == ("PENDING", 1, "")
    task_id = body["task_id"]

    clock.now += JOB_S * 0.5
    assert await _status(sandbox, task_id) == {
        "task_id": task_id,
        "status": "STARTED",
        "queue": 0,
        "result": "",
    }
    early = await sandbox.get(f"{ROOT}/media/{task_id}/greeting.wav")
    assert early.status_code == 404
    clock.now += JOB_S
    done = await _status(sandbox, task_id)
    assert (done["status"], done["queue"]) == ("SUCCESS", 0)
    assert done["result"] == f"{BASE}{ROOT}/media/{task_id}/greeting.wav"

    result = await sandbox.get(done["result"])
    assert result.status_code == 200
    assert result.headers["content-type"] == "audio/wav"
    assert _wav_seconds(result.content) == pytest.approx(len("Hello there, world.") / 15, abs=0.01)


async def test_tasks_run_one_at_a_time_per_account(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    first = (await _speech(sandbox)).json()
    second = (await _create(sandbox, "tts", None, PAIRS[1], voice="emma", text="Next.")).json()
    third = (await _speech(sandbox)).json()
    swap = (await _create(sandbox, "imageswap", _swap_files())).json()
    assert [first["queue"], second["queue"], third["queue"], swap["queue"]] == [1, 2, 3, 1]
    assert second["eta"] == pytest.approx(2 * JOB_S)

    clock.now += JOB_S * 0.5
    states = [await _status(sandbox, t["task_id"]) for t in (first, second, third)]
    assert [(s["status"], s["queue"]) for s in states] == [
        ("STARTED", 0),
        ("PENDING", 1),
        ("PENDING", 2),
    ]
    clock.now += JOB_S
    states = [await _status(sandbox, t["task_id"]) for t in (first, second, third)]
    assert [(s["status"], s["queue"]) for s in states] == [
        ("SUCCESS", 0),
        ("STARTED", 0),
        ("PENDING", 1),
    ]
    clock.now += 2 * JOB_S
    assert (await _status(sandbox, third["task_id"]))["status"] == "SUCCESS"


async def test_status_by_form_post_and_at_the_models_path(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    task_id = (await _create(sandbox, "imageswap", _swap_files())).json()["task_id"]
    posted = await sandbox.post(f"{ROOT}/v1/status", data={"task_id": task_id}, auth=AUTH)
    aliased = await sandbox.get(
        f"{ROOT}/v1/imageswap/status", params={"task_id": task_id}, auth=AUTH
    )
    assert posted.json() == aliased.json()
    assert posted.json()["status"] == "PENDING"


async def test_unknown_or_missing_task_ids(sandbox: httpx.AsyncClient) -> None:
    unknown = await sandbox.get(f"{ROOT}/v1/status", params={"task_id": "nope"}, auth=AUTH)
    missing = await sandbox.get(f"{ROOT}/v1/status", auth=AUTH)
    assert (unknown.status_code, unknown.json()["message"]) == (404, "Task not found.")
    assert (missing.status_code, missing.json()["message"]) == (400, "Task_id is missing.")


async def test_image_swap_result_has_the_targets_size_and_format(
    sandbox: httpx.AsyncClient,
) -> None:
    created = await _create(sandbox, "imageswap", _swap_files(), use_gfpgan="True")
    body = created.json()
    assert created.status_code == 201 and body.keys() == {
        "task_id",
        "status",
        "eta",
        "queue",
        "result",
    }
    done = await _until_done(sandbox, body["task_id"])
    result = await sandbox.get(done["result"])
    assert result.headers["content-type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(result.content))
    assert (picture.format, picture.size) == ("JPEG", (300, 300))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (_swap_files(source=FLAT), "No face detected on the source image."),
        (_swap_files(target=FLAT), "No face detected on the target image."),
    ],
)
async def test_a_swap_without_a_face_fails(
    sandbox: httpx.AsyncClient, files: dict[str, Any], message: str
) -> None:
    created = await _create(sandbox, "imageswap", files)
    assert created.status_code == 201
    done = await _until_done(sandbox, created.json()["task_id"])
    assert done == {
        "task_id": created.json()["task_id"],
        "status": "FAILURE",
        "queue": 0,
        "result": "",
        "message": message,
    }


async def test_swaps_by_url_are_gets(sandbox: httpx.AsyncClient, outside: respx.MockRouter) -> None:
    created = await sandbox.get(
        f"{ROOT}/v1/videoswap/create",
        params={
            "source_url": "https://files.test/photo.png",
            "target_url": "https://files.test/clip.mp4",
        },
        auth=AUTH,
    )
    assert created.status_code == 201, created.text
    done = await _until_done(sandbox, created.json()["task_id"])
    result = await sandbox.get(done["result"])
    assert result.headers["content-type"] == "video/mp4"
    info = video(result.content, "result")
    assert (info.width, info.height, info.duration_s) == (96, 64, 3.0)


async def test_lipsync_lasts_as_long_as_the_audio(sandbox: httpx.AsyncClient) -> None:
    files = {"audio": ("speech.wav", SPEECH), "video": ("clip.mp4", CLIP)}
    created = await _create(sandbox, "lipsync", files, model="fast")
    body = created.json()
    assert body.keys() == {"task_id", "status", "progress", "queue", "result"}
    done = await _until_done(sandbox, body["task_id"])
    info = video((await sandbox.get(done["result"])).content, "result")
    assert (info.width, info.height, info.duration_s) == (96, 64, 2.0)


@pytest.mark.parametrize(
    ("model", "files", "fields", "message"),
    [
        ("tts", None, {"text": "hi"}, "Voice is missing."),
        ("tts", None, {"voice": "zed", "text": "hi"}, "Voice 'zed' not found."),
        ("tts", None, {"voice": "jack"}, "Text is missing."),
        ("lipsync", {"video": ("c.mp4", CLIP)}, {}, "Audio URL is missing."),
        (
            "lipsync",
            {"audio": ("a.wav", SPEECH), "video": ("c.mp4", CLIP)},
            {"model": "pro"},
            "Model must be one of",
        ),
        (
            "lipsync",
            {"audio": ("a.txt", b"words"), "video": ("c.mp4", CLIP)},
            {},
            "Unsupported file format of the audio.",
        ),
        (
            "videoswap",
            {"source": ("s.png", PHOTO), "target": ("t.png", PHOTO)},
            {},
            "Unsupported file format of the target video.",
        ),
        ("imageswap", {"source": ("s.png", PHOTO)}, {}, "Target image URL is missing."),
        ("imageswap", _swap_files(), {"callback": "not a url"}, "Callback must be a URL."),
    ],
)
async def test_invalid_task_requests_are_400_and_not_billed(
    sandbox: httpx.AsyncClient,
    model: str,
    files: dict[str, Any] | None,
    fields: dict[str, str],
    message: str,
) -> None:
    response = await _create(sandbox, model, files, **fields)
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert response.json()["message"].startswith(message)
    assert (await _stats(sandbox))["submissions"] == 0


async def test_voices_are_listed_for_free(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "no_credits")
    response = await sandbox.get(f"{ROOT}/v1/tts/voices", auth=AUTH)
    voices = response.json()
    assert {"api_name": "jack", "age": "adult", "language": "eng", "gender": "male"} in voices
    assert {v["gender"] for v in voices} == {"male", "female"}
    assert (await _stats(sandbox))["submissions"] == 0


# callbacks -------------------------------------------------------------------------------------


async def _callback(router: respx.MockRouter) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if router["hook"].called:
            body: dict[str, Any] = json.loads(router["hook"].calls.last.request.content)
            return body
        await asyncio.sleep(0.02)
    raise AssertionError("no callback arrived")


async def test_a_finished_task_posts_its_callback(
    sandbox: httpx.AsyncClient, outside: respx.MockRouter
) -> None:
    created = await _speech(sandbox, callback=HOOK)
    body = await _callback(outside)
    task_id = created.json()["task_id"]
    assert body == {
        "task_id": task_id,
        "status": "SUCCESS",
        "file_url": f"{BASE}{ROOT}/media/{task_id}/{task_id}.wav",
    }


async def test_video_callbacks_carry_the_duration(
    sandbox: httpx.AsyncClient, outside: respx.MockRouter
) -> None:
    files = {"source": ("s.png", PHOTO), "target": ("t.mp4", CLIP)}
    await _create(sandbox, "videoswap", files, callback=HOOK, title="my video")
    body = await _callback(outside)
    assert body["status"] == "SUCCESS"
    assert body["video_duration"] == 3
    assert body["file_url"].endswith("/my_video.mp4")


async def test_a_failed_task_posts_failure(
    sandbox: httpx.AsyncClient, outside: respx.MockRouter
) -> None:
    created = await _create(sandbox, "imageswap", _swap_files(source=FLAT), callback=HOOK)
    assert await _callback(outside) == {"task_id": created.json()["task_id"], "status": "FAILURE"}


async def test_an_unreachable_callback_is_ignored(
    sandbox: httpx.AsyncClient, outside: respx.MockRouter
) -> None:
    outside.post("https://hooks.test/down").mock(side_effect=httpx.ConnectError("refused"))
    created = await _speech(sandbox, callback="https://hooks.test/down")
    done = await _until_done(sandbox, created.json()["task_id"])
    assert done["status"] == "SUCCESS"


# faults ----------------------------------------------------------------------------------------


async def test_fault_http_500(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "http_500")
    failed = await _analyse(sandbox, "keywords")
    assert (failed.status_code, failed.json()) == (
        500,
        {"status": "error", "message": "Internal server error."},
    )
    assert (await _analyse(sandbox, "keywords")).status_code == 200
    stats = await _stats(sandbox)
    assert (stats["submissions"], stats["faults_served"]) == (1, 1)


async def test_fault_garbage_is_200_html(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "garbage")
    response = await _speech(sandbox)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


async def test_fault_timeout_never_answers(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "timeout")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_analyse(sandbox, "faces"), timeout=0.3)


async def test_fault_rate_limit_is_the_documented_502_but_not_over_limit(
    sandbox: httpx.AsyncClient,
) -> None:
    await _arm(sandbox, "rate_limit")
    response = await _analyse(sandbox, "faces")
    assert response.status_code == 502
    assert response.json()["message"].startswith("Too many simultaneous requests")
    assert (await _stats(sandbox))["over_limit"] == 0


async def test_fault_no_credits_is_429_on_billable_requests_only(
    sandbox: httpx.AsyncClient,
) -> None:
    task_id = (await _speech(sandbox)).json()["task_id"]
    await _arm(sandbox, "no_credits", count=2)
    assert (
        await sandbox.get(f"{ROOT}/v1/status", params={"task_id": task_id}, auth=AUTH)
    ).status_code == 200
    refused = await _speech(sandbox)
    assert refused.status_code == 429
    assert refused.json()["message"].startswith(
        "You have exceeded the number of available requests"
    )
    assert (await _stats(sandbox))["submissions"] == 1


async def test_fault_no_face_empties_faces(sandbox: httpx.AsyncClient) -> None:
    await _arm(sandbox, "no_face")
    assert (await _analyse(sandbox, "faces")).json() == {"faces": [], "status": "ok"}
    await _arm(sandbox, "no_face")
    assert (await _analyse(sandbox, "keywords")).json()["keywords"]


@pytest.mark.parametrize(
    ("fault", "model", "files", "message"),
    [
        ("no_face", "imageswap", _swap_files(), "No face detected on the source image."),
        (
            "no_face",
            "lipsync",
            {"audio": ("a.wav", SPEECH), "video": ("c.mp4", CLIP)},
            "No face detected in the video.",
        ),
        ("blocked", "imageswap", _swap_files(), "The request was rejected by content moderation."),
    ],
)
async def test_faults_that_fail_tasks(
    sandbox: httpx.AsyncClient, fault: str, model: str, files: dict[str, Any], message: str
) -> None:
    await _arm(sandbox, fault)
    created = await _create(sandbox, model, files)
    assert created.status_code == 201
    done = await _until_done(sandbox, created.json()["task_id"])
    assert (done["status"], done["message"]) == ("FAILURE", message)


async def test_faults_on_a_poll_end_the_running_task(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    task_id = (await _create(sandbox, "imageswap", _swap_files())).json()["task_id"]
    await _arm(sandbox, "http_500")
    failed = await sandbox.get(f"{ROOT}/v1/status", params={"task_id": task_id}, auth=AUTH)
    assert failed.status_code == 500
    await _arm(sandbox, "no_face")
    assert (await _status(sandbox, task_id))["status"] == "FAILURE"
    clock.now += 10
    assert (await _status(sandbox, task_id))["message"] == "No face detected on the source image."


async def test_stats_count_requests_and_submissions(sandbox: httpx.AsyncClient) -> None:
    task_id = (await _speech(sandbox)).json()["task_id"]
    done = await _until_done(sandbox, task_id)
    await sandbox.get(done["result"])
    await _analyse(sandbox, "keywords", PHOTO, httpx.BasicAuth("x", "y"))
    await _analyse(sandbox, "quality")
    stats = await _stats(sandbox)
    assert stats["submissions"] == 2
    assert stats["by_endpoint"]["/v1/tts/create"] == 1
    assert stats["by_endpoint"]["/v1/keywords"] == 1
    assert stats["by_endpoint"]["/v1/quality"] == 1
    assert stats["by_endpoint"]["/media"] == 1
    assert stats["by_endpoint"]["/v1/status"] >= 1
    assert stats["requests"] == sum(stats["by_endpoint"].values())


# the adapter against the emulator --------------------------------------------------------------


MEDIA = DictMedia(
    {
        "file_photo": Media(PHOTO, "image/png"),
        "file_jpeg": Media(JPEG, "image/jpeg"),
        "file_flat": Media(FLAT, "image/png"),
        "file_clip": Media(CLIP, "video/mp4"),
        "file_speech": Media(SPEECH, "audio/wav"),
    }
)
PHOTO_FILE = ImageInput(file_id="file_photo")
JPEG_FILE = ImageInput(file_id="file_jpeg")
FLAT_FILE = ImageInput(file_id="file_flat")
CLIP_FILE = VideoInput(file_id="file_clip")
SPEECH_FILE = AudioInput(file_id="file_speech")


def _adapter(client: httpx.AsyncClient, pair: int = 0) -> EverypixelAdapter:
    client_id, secret = EVERYPIXEL_KEY_PAIRS[pair]
    config = AdapterConfig(
        base_url=f"{BASE}{ROOT}",
        credentials=(Credential(client_id=client_id, client_secret=secret),),
        timeout_s=5,
        poll_interval_s=0.02,
    )
    return EverypixelAdapter(client, config)


def _call(operation: Operation, params: Params, callback: str | None = None) -> Call:
    return Call("job_1", operation, params, MEDIA, callback_url=callback)


async def _run(adapter: EverypixelAdapter, call: Call) -> Succeeded | Failed | PollTrouble:
    submitted = await adapter.submit(call)
    if not isinstance(submitted, Submitted):
        return submitted
    for _ in range(250):
        result = await adapter.poll(call, submitted.provider_job_id)
        if not isinstance(result, Progress):
            return result
        await asyncio.sleep(result.poll_after_s)
    raise AssertionError("the adapter never saw the task finish")


@pytest.mark.parametrize(
    ("operation", "params", "keys"),
    [
        (
            Operation.image_keywords,
            ImageKeywords(image=PHOTO_FILE, num_keywords=7, lang="fr", colors=True, num_colors=3),
            {"keywords", "colors"},
        ),
        (Operation.image_caption, ImageCaption(image=JPEG_FILE, caption_len="short"), {"caption"}),
        (Operation.image_faces, Faces(image=PHOTO_FILE), {"faces"}),
        (Operation.image_quality, ImageQuality(image=PHOTO_FILE), {"quality"}),
        (Operation.image_quality, ImageQuality(image=JPEG_FILE, model="ugc"), {"quality"}),
        (Operation.video_keywords, VideoKeywords(video=CLIP_FILE, num_keywords=4), {"keywords"}),
    ],
)
async def test_the_adapter_runs_analyses_against_the_emulator(
    sandbox: httpx.AsyncClient, operation: Operation, params: Params, keys: set[str]
) -> None:
    result = await _run(_adapter(sandbox), _call(operation, params))
    assert isinstance(result, Succeeded), result
    assert set(result.data) == keys and not result.files
    if operation is Operation.image_keywords:
        assert len(result.data["keywords"]) == 7 and len(result.data["colors"]) <= 3
    if operation is Operation.image_quality:
        ugc = isinstance(params, ImageQuality) and params.model == "ugc"
        assert (result.data["quality"]["class"] is not None) is ugc
    if operation is Operation.image_caption:
        assert 3 <= len(result.data["caption"].split()) <= 6
    assert (await _stats(sandbox))["submissions"] == 1


async def test_the_adapter_sends_url_inputs_as_get(
    sandbox: httpx.AsyncClient, outside: respx.MockRouter
) -> None:
    params = ImageKeywords(image=ImageInput(url="https://files.test/photo.png"), num_keywords=5)
    result = await _run(_adapter(sandbox), _call(Operation.image_keywords, params))
    assert isinstance(result, Succeeded) and len(result.data["keywords"]) == 5
    assert outside.routes[0].called


def _decoded_kind(content: bytes, content_type: str) -> tuple[str, object]:
    if content_type.startswith("image/"):
        return content_type, Image.open(io.BytesIO(content)).size
    if content_type == "audio/wav":
        return content_type, round(_wav_seconds(content), 2)
    info = video(content, "result")
    return content_type, (info.width, info.height, info.duration_s)


@pytest.mark.parametrize(
    ("operation", "params", "decoded"),
    [
        (
            Operation.image_swap_face,
            SwapFace(source=PHOTO_FILE, target=JPEG_FILE),
            ("image/jpeg", (300, 300)),
        ),
        (
            Operation.image_swap_face,
            SwapFace(source=PHOTO_FILE, target=PHOTO_FILE, enhance_face=True),
            ("image/png", (320, 200)),
        ),
        (
            Operation.video_swap_face,
            SwapFaceVideo(source=PHOTO_FILE, target=CLIP_FILE, enhance_face=True),
            ("video/mp4", (96, 64, 3.0)),
        ),
        (
            Operation.video_lipsync,
            Lipsync(video=CLIP_FILE, audio=SPEECH_FILE),
            ("video/mp4", (96, 64, 2.0)),
        ),
        (
            Operation.video_lipsync,
            Lipsync(video=CLIP_FILE, audio=SPEECH_FILE, model="fast"),
            ("video/mp4", (96, 64, 2.0)),
        ),
        (Operation.audio_speech, Speech(text="x" * 45, voice="lucia"), ("audio/wav", 3.0)),
    ],
)
async def test_the_adapter_runs_tasks_against_the_emulator(
    sandbox: httpx.AsyncClient,
    operation: Operation,
    params: Params,
    decoded: tuple[str, object],
) -> None:
    result = await _run(_adapter(sandbox), _call(operation, params))
    assert isinstance(result, Succeeded), result
    [output] = result.files
    assert _decoded_kind(output.content, output.content_type) == decoded
    stats = await _stats(sandbox)
    assert stats["submissions"] == 1 and stats["by_endpoint"]["/media"] == 1


async def test_the_adapter_passes_the_callback(
    sandbox: httpx.AsyncClient, outside: respx.MockRouter
) -> None:
    call = _call(Operation.audio_speech, Speech(text="hi", voice="jack"), callback=HOOK)
    submitted = await _adapter(sandbox).submit(call)
    assert isinstance(submitted, Submitted)
    body = await _callback(outside)
    assert (body["task_id"], body["status"]) == (submitted.provider_job_id, "SUCCESS")
    assert body["file_url"].endswith("/job_1.wav"), "the job id is the task's title"


async def test_the_adapter_lists_voices(sandbox: httpx.AsyncClient) -> None:
    voices = await _adapter(sandbox).voices()
    assert Voice(id="jack", language="eng", gender="male", age="adult") in voices


async def test_the_adapter_reads_the_emulators_refusals(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    adapter = _adapter(sandbox)
    swap = _call(Operation.image_swap_face, SwapFace(source=FLAT_FILE, target=PHOTO_FILE))
    submitted = await adapter.submit(swap)
    assert isinstance(submitted, Submitted)
    clock.now += 1
    no_face = await adapter.poll(swap, submitted.provider_job_id)
    assert isinstance(no_face, Failed)
    assert (no_face.code, no_face.retryable) == (ErrorCode.no_face_detected, False)

    faces = _call(Operation.image_faces, Faces(image=PHOTO_FILE))
    await _arm(sandbox, "no_credits")
    empty = await adapter.submit(faces)
    assert isinstance(empty, Failed)
    assert (empty.code, empty.retryable) == (ErrorCode.provider_unavailable, True)

    await _arm(sandbox, "rate_limit")
    limited = await adapter.submit(faces)
    assert isinstance(limited, Failed)
    assert (limited.code, limited.retry_after_s) == (ErrorCode.provider_rate_limited, 1.0)

    await _arm(sandbox, "garbage")
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(faces)

    await _arm(sandbox, "http_500")
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(faces)

    bad = _call(Operation.image_keywords, ImageKeywords(image=FLAT_FILE))
    wrong = EverypixelAdapter(
        sandbox,
        AdapterConfig(
            base_url=f"{BASE}{ROOT}", credentials=(Credential(client_id="x", client_secret="y"),)
        ),
    )
    refused = await wrong.submit(bad)
    assert isinstance(refused, Failed) and refused.code is ErrorCode.provider_auth_failed

    not_a_clip = DictMedia({"file_photo": Media(PHOTO, "video/mp4")})
    keywords = Call(
        "job_2", Operation.video_keywords, VideoKeywords(video=VideoInput(file_id="file_photo")),
        not_a_clip,
    )  # fmt: skip
    unsupported = await adapter.submit(keywords)
    assert isinstance(unsupported, Failed)
    assert (unsupported.code, unsupported.retryable) == (ErrorCode.invalid_media, False)


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        (Operation.image_caption, ImageCaption(image=ImageInput(file_id="file_webp"))),
        (Operation.image_faces, Faces(image=ImageInput(file_id="file_webp"))),
        (Operation.image_quality, ImageQuality(image=ImageInput(file_id="file_webp"))),
        (Operation.image_quality,
         ImageQuality(image=ImageInput(file_id="file_webp"), model="ugc")),
    ],
)  # fmt: skip
async def test_a_webp_the_gateway_took_is_served_by_the_jpeg_png_analyses(
    sandbox: httpx.AsyncClient, operation: Operation, params: Params
) -> None:
    """The emulator refuses WebP there, as documented; the adapter sends it as PNG."""
    webp = DictMedia({"file_webp": Media(images.render(40, 40, "webp", seed=5), "image/webp")})
    call = Call("job_1", operation, params, webp)
    assert isinstance(await _adapter(sandbox).submit(call), Succeeded)
    assert [c.after.content_type for c in call.conformed] == ["image/png"]


async def test_the_adapter_over_the_rate_meets_a_retryable_502(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    adapter = _adapter(sandbox)
    call = _call(Operation.image_faces, Faces(image=PHOTO_FILE))
    results = [await adapter.submit(call) for _ in range(11)]
    assert all(isinstance(r, Succeeded) for r in results[:10])
    last = results[10]
    assert isinstance(last, Failed)
    assert (last.code, last.retryable, last.retry_after_s) == (
        ErrorCode.provider_rate_limited,
        True,
        1.0,
    )
    clock.now += last.retry_after_s or 0
    assert isinstance(await adapter.submit(call), Succeeded)
    assert (await _stats(sandbox))["over_limit"] == 1


async def test_paced_at_the_documented_rate_nothing_is_refused(
    sandbox: httpx.AsyncClient, clock: Clock
) -> None:
    """Just under 30 requests a second per key pair, four pairs: 240 calls in two seconds."""
    adapters = [_adapter(sandbox, pair) for pair in range(4)]
    call = _call(Operation.image_keywords, ImageKeywords(image=PHOTO_FILE))
    for tick in range(60):
        clock.now = 1000.0 + tick * 0.034
        results = await asyncio.gather(*(a.submit(call) for a in adapters))
        assert all(isinstance(r, Succeeded) for r in results)
    stats = await _stats(sandbox)
    assert (stats["over_limit"], stats["submissions"]) == (0, 240)
