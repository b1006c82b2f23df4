"""The Everypixel Labs adapter against the request and response bodies of its document (respx)."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Iterator
from typing import cast
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from PIL import Image

from app.domain.errors import ErrorCode, ProviderUnavailable, UpstreamTimeout
from app.domain.media import AudioInput, ImageInput, MediaInput, VideoInput
from app.domain.operations import (
    PARAMS,
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
    MediaSource,
    OutputFile,
    PollTrouble,
    Progress,
    Submitted,
    Succeeded,
    Voice,
)
from app.providers.everypixel import EverypixelAdapter
from app.sandbox import images
from tests.utils.media_source import DictMedia

BASE = "https://api.everypixel.com"
CLIENT_ID, CLIENT_SECRET = "client-id-1", "secret-1"
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
TASK_ID = "5b7e2f0c-9d7a-4b51-a0f4-6a2f1c1e9a11"
RESULT_URL = "https://storage.everypixel.com/results/5b7e2f0c.mp4"
CALLBACK = "https://gateway.example/v1/providers/everypixel/callbacks/tok_1"

PNG = b"\x89PNG\r\n\x1a\n pretend pixels"
MP4 = b"\x00\x00\x00\x18ftypisom pretend frames"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt pretend samples"


class Files:
    """Uploaded files by id; URL references are read too (the gateway downloads them)."""

    def __init__(self) -> None:
        self.files = {
            "file_photo": Media(PNG, "image/png"),
            "file_clip": Media(MP4, "video/mp4"),
            "file_voice": Media(WAV, "audio/wav"),
        }

    async def read(self, ref: MediaInput) -> Media:
        if ref.url is not None:
            return Media(b"downloaded " + ref.url.encode(), "image/jpeg")
        assert ref.file_id is not None
        return self.files[ref.file_id]

    def public_url(self, ref: MediaInput) -> str:
        assert ref.url is not None
        return ref.url


PHOTO = ImageInput(file_id="file_photo")
CLIP = VideoInput(file_id="file_clip")
VOICE = AudioInput(file_id="file_voice")
PHOTO_URL = ImageInput(url="https://example.com/kitten.jpg")
FACE_URL = ImageInput(url="https://example.com/face.png")
CLIP_URL = VideoInput(url="https://example.com/office.mp4")
VOICE_URL = AudioInput(url="https://example.com/ascend.mp3")

KEYWORDS_BODY = {
    "keywords": [
        {"keyword": "animal", "score": 0.9718916489849907},
        {"keyword": "cute", "score": 0.9601239529000117},
        {"keyword": "pets", "score": 0.949350643787409},
    ],
    "colors": [
        {"name": "WhiteSmoke", "rgb": [237, 238, 240], "hex": "#edeef0", "percentage": 42.88},
        {"name": "Sienna", "rgb": [123, 79, 50], "hex": "#7b4f32", "percentage": 7.43},
    ],
    "status": "ok",
}
VIDEO_KEYWORDS_BODY = {
    "keywords": [
        {"keyword": "Medium shot", "score": 0.8536547422409058},
        {"keyword": "Real time", "score": 0.8485572934150696},
    ],
    "status": "ok",
}
FACES_BODY = {
    "faces": [
        {
            "age": 20.553737561567686,
            "score": 0.9999862909317017,
            "bbox": [488.1020906694572, 147.58440036790006, 824.1707326180912, 581.0635042573758],
            "class": "Age - Young Adult",
        }
    ],
    "status": "ok",
}


def _call(operation: Operation, params: Params, callback: str | None = None) -> Call:
    # ``Files`` has no ``publish``, which the Everypixel adapter never calls
    return Call("job_1", operation, params, cast(MediaSource, Files()), callback_url=callback)


@pytest.fixture
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
async def adapter() -> AsyncIterator[EverypixelAdapter]:
    config = AdapterConfig(
        base_url=BASE + "/",
        credentials=(Credential(client_id=CLIENT_ID, client_secret=CLIENT_SECRET),),
        timeout_s=5,
        poll_interval_s=3.0,
    )
    async with httpx.AsyncClient() as client:
        yield EverypixelAdapter(client, config)


def _query(request: httpx.Request) -> dict[str, str]:
    return {k: v for k, v in request.url.params.items()}


def _created(**extra: object) -> httpx.Response:
    body = {"task_id": TASK_ID, "status": "PENDING", "eta": 12.5, "queue": 1, "result": "", **extra}
    return httpx.Response(201, json=body)


def _status(status: str, **extra: object) -> httpx.Response:
    body = {"task_id": TASK_ID, "status": status, "queue": 0, "result": "", **extra}
    return httpx.Response(200, json=body)


# analyses --------------------------------------------------------------------------------------


async def test_keywords_by_url_is_a_get_with_every_option(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.get("/v1/keywords").respond(200, json=KEYWORDS_BODY)
    params = ImageKeywords(
        image=PHOTO_URL, num_keywords=10, threshold=0.5, lang="de", colors=True, num_colors=5
    )
    result = await adapter.submit(_call(Operation.image_keywords, params))

    request = route.calls.last.request
    assert request.headers["authorization"] == BASIC
    assert _query(request) == {
        "url": "https://example.com/kitten.jpg",
        "num_keywords": "10",
        "threshold": "0.5",
        "lang": "de",
        "colors": "true",
        "num_colors": "5",
    }
    assert result == Succeeded(
        data={
            "keywords": [
                {"keyword": "animal", "score": 0.9718916489849907},
                {"keyword": "cute", "score": 0.9601239529000117},
                {"keyword": "pets", "score": 0.949350643787409},
            ],
            "colors": [
                {
                    "name": "WhiteSmoke",
                    "rgb": [237, 238, 240],
                    "hex": "#edeef0",
                    "percentage": 42.88,
                },
                {"name": "Sienna", "rgb": [123, 79, 50], "hex": "#7b4f32", "percentage": 7.43},
            ],
        }
    )


async def test_keywords_of_an_upload_post_the_data_field_with_options_in_the_query(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    body = {"keywords": KEYWORDS_BODY["keywords"], "status": "ok"}
    route = upstream.post("/v1/keywords").respond(200, json=body)
    result = await adapter.submit(
        _call(Operation.image_keywords, ImageKeywords(image=PHOTO, num_keywords=3))
    )

    request = route.calls.last.request
    assert _query(request) == {"num_keywords": "3"}
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert b'name="data"; filename="data.png"' in request.content
    assert PNG in request.content
    assert isinstance(result, Succeeded)
    assert set(result.data) == {"keywords"}, "no colors key unless colors were asked for"


async def test_video_keywords_by_url_and_by_upload(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    by_url = upstream.get("/v1/video_keywords").respond(200, json=VIDEO_KEYWORDS_BODY)
    by_file = upstream.post("/v1/video_keywords").respond(200, json=VIDEO_KEYWORDS_BODY)
    params = VideoKeywords(video=CLIP_URL, num_keywords=10, threshold=0.2)
    first = await adapter.submit(_call(Operation.video_keywords, params))
    second = await adapter.submit(_call(Operation.video_keywords, VideoKeywords(video=CLIP)))

    assert _query(by_url.calls.last.request) == {
        "url": "https://example.com/office.mp4",
        "num_keywords": "10",
        "threshold": "0.2",
    }
    assert b'name="data"; filename="data.mp4"' in by_file.calls.last.request.content
    expected = Succeeded(
        data={
            "keywords": [
                {"keyword": "Medium shot", "score": 0.8536547422409058},
                {"keyword": "Real time", "score": 0.8485572934150696},
            ]
        }
    )
    assert first == second == expected


async def test_caption_reads_the_boolean_status_shape(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.post("/v1/image_captioning").respond(
        200,
        json={"result": {"caption": "a small cat sitting on the floor indoors"}, "status": True},
    )
    params = ImageCaption(image=PHOTO, caption_len="short")
    result = await adapter.submit(_call(Operation.image_caption, params))

    assert _query(route.calls.last.request) == {"caption_len": "short"}
    assert result == Succeeded(data={"caption": "a small cat sitting on the floor indoors"})


async def test_faces_keep_age_score_box_and_class(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.post("/v1/faces").respond(200, json=FACES_BODY)
    result = await adapter.submit(_call(Operation.image_faces, Faces(image=PHOTO_URL)))

    # "JPEG or PNG", by URL too: the gateway reads the URL and uploads the picture
    request = route.calls.last.request
    assert _query(request) == {}
    assert b"downloaded https://example.com/kitten.jpg" in request.content
    assert result == Succeeded(data={"faces": FACES_BODY["faces"]})


async def test_no_face_is_an_empty_list_not_a_failure(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.post("/v1/faces").respond(200, json={"faces": [], "status": "ok"})
    result = await adapter.submit(_call(Operation.image_faces, Faces(image=PHOTO)))
    assert result == Succeeded(data={"faces": []})


@pytest.mark.parametrize(
    ("model", "path", "body", "quality"),
    [
        (
            "stock",
            "/v1/quality",
            {"score": 0.9729430521699124},
            {"score": 0.9729430521699124, "class": None},
        ),
        (
            "ugc",
            "/v1/quality_ugc",
            {"score": 0.5947988033294678, "class": 3},
            {"score": 0.5947988033294678, "class": 3},
        ),
    ],
)
async def test_quality_models_pick_their_endpoint(
    upstream: respx.MockRouter,
    adapter: EverypixelAdapter,
    model: str,
    path: str,
    body: dict[str, object],
    quality: dict[str, object],
) -> None:
    upstream.post(path).respond(200, json={"quality": body, "status": "ok"})
    params = ImageQuality.model_validate({"image": PHOTO_URL, "model": model})
    result = await adapter.submit(_call(Operation.image_quality, params))
    assert result == Succeeded(data={"quality": quality})


async def test_quality_defaults_to_the_stock_model(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.post("/v1/quality").respond(200, json={"quality": {"score": 0.5}, "status": "ok"})
    result = await adapter.submit(_call(Operation.image_quality, ImageQuality(image=PHOTO)))
    assert result == Succeeded(data={"quality": {"score": 0.5, "class": None}})


# pictures the analyses take ---------------------------------------------------------------------

WEBP_PICTURE = images.render(60, 40, "webp", seed=4)
WEBP_FILE = ImageInput(file_id="file_webp")
WEBP_URL = ImageInput(url="https://example.com/photo.webp")
JPEG_PNG_ONLY = [
    ("/v1/image_captioning", Operation.image_caption, ImageCaption),
    ("/v1/faces", Operation.image_faces, Faces),
    ("/v1/quality", Operation.image_quality, ImageQuality),
]


def _webp_call(operation: Operation, params: Params) -> Call:
    media = DictMedia(
        {"file_webp": Media(WEBP_PICTURE, "image/webp")},
        {WEBP_URL.url or "": Media(WEBP_PICTURE, "image/webp")},
    )
    return Call("job_1", operation, params, media)


def _sent_picture(request: httpx.Request) -> Image.Image:
    """The multipart ``data`` part's picture (its header says ``data.png``, ``image/png``)."""
    head, _, rest = request.content.partition(b'name="data"; filename="data.png"')
    assert head and rest, "no data.png part"
    assert rest.lstrip().startswith(b"Content-Type: image/png")
    body = rest.split(b"\r\n\r\n", 1)[1]
    picture = Image.open(io.BytesIO(body))
    picture.load()
    return picture


@pytest.mark.parametrize(("path", "operation", "model"), JPEG_PNG_ONLY)
@pytest.mark.parametrize("image", [WEBP_FILE, WEBP_URL], ids=["upload", "url"])
async def test_a_webp_picture_goes_to_the_jpeg_and_png_analyses_as_png(
    upstream: respx.MockRouter,
    adapter: EverypixelAdapter,
    path: str,
    operation: Operation,
    model: type[Params],
    image: ImageInput,
) -> None:
    """Captioning and faces take "An image (JPEG or PNG)", quality "provided either by URL or
    by file upload. Supported image formats are JPEG and PNG": a WebP the gateway took is
    sent as a PNG upload, a URL included (read by the gateway, never handed over)."""
    answers = {
        "/v1/image_captioning": {"result": {"caption": "a red square"}, "status": True},
        "/v1/faces": {"faces": [], "status": "ok"},
        "/v1/quality": {"quality": {"score": 0.5}, "status": "ok"},
    }
    route = upstream.post(path).respond(200, json=answers[path])
    params = model.model_validate({"image": image})
    call = _webp_call(operation, params)
    assert adapter.reads(operation, params) == [image]

    assert isinstance(await adapter.submit(call), Succeeded)
    request = route.calls.last.request
    assert "url" not in _query(request)
    picture = _sent_picture(request)
    assert (picture.format, picture.size) == ("PNG", (60, 40))
    [change] = call.conformed
    assert (change.before.content_type, change.after.content_type) == ("image/webp", "image/png")


async def test_the_ugc_quality_model_takes_jpeg_and_png_too(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.post("/v1/quality_ugc").respond(
        200, json={"quality": {"score": 0.6, "class": 3}, "status": "ok"}
    )
    params = ImageQuality(image=WEBP_FILE, model="ugc")
    assert isinstance(await adapter.submit(_webp_call(Operation.image_quality, params)), Succeeded)
    assert _sent_picture(route.calls.last.request).format == "PNG"


async def test_keywording_names_no_type_and_sends_pictures_as_they_are(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.post("/v1/keywords").respond(200, json={"keywords": [], "status": "ok"})
    call = _webp_call(Operation.image_keywords, ImageKeywords(image=WEBP_FILE))
    assert isinstance(await adapter.submit(call), Succeeded)
    assert WEBP_PICTURE in route.calls.last.request.content
    assert call.conformed == []
    assert adapter.reads(Operation.image_keywords, ImageKeywords(image=WEBP_URL)) == []


async def test_an_unreadable_picture_of_another_type_fails_unsent(
    adapter: EverypixelAdapter,
) -> None:
    media = DictMedia({"file_junk": Media(b"not a picture", "image/webp")})
    params = Faces(image=ImageInput(file_id="file_junk"))
    result = await adapter.submit(Call("job_1", Operation.image_faces, params, media))
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.invalid_media, False)


# task creation ---------------------------------------------------------------------------------


async def test_speech_posts_form_fields_with_title_and_callback(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.post("/v1/tts/create").mock(return_value=_created())
    params = Speech(text="Hello & welcome?", voice="jack")
    result = await adapter.submit(_call(Operation.audio_speech, params, CALLBACK))

    assert result == Submitted(TASK_ID, poll_after_s=3.0)
    request = route.calls.last.request
    assert request.headers["authorization"] == BASIC
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "voice": ["jack"],
        "text": ["Hello & welcome?"],
        "title": ["job_1"],
        "callback": [CALLBACK],
    }


async def test_speech_sends_the_clients_title_for_the_output_file(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    """The document: "title (string, optional): Sets the name for the output file"."""
    route = upstream.post("/v1/tts/create").mock(return_value=_created())
    params = Speech(text="Hello", voice="jack", title="welcome-message")
    assert isinstance(await adapter.submit(_call(Operation.audio_speech, params)), Submitted)
    sent = parse_qs(route.calls.last.request.content.decode())
    assert sent["title"] == ["welcome-message"]


async def test_lipsync_of_two_urls_is_a_get_with_the_model(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.get("/v1/lipsync/create").mock(return_value=_created(progress=0.0))
    params = Lipsync(video=CLIP_URL, audio=VOICE_URL, model="fast")
    result = await adapter.submit(_call(Operation.video_lipsync, params))

    assert result == Submitted(TASK_ID, poll_after_s=3.0)
    assert _query(route.calls.last.request) == {
        "audio_url": "https://example.com/ascend.mp3",
        "video_url": "https://example.com/office.mp4",
        "model": "fast",
        "title": "job_1",
    }


async def test_lipsync_of_uploads_posts_audio_and_video_files(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.post("/v1/lipsync/create").mock(return_value=_created())
    await adapter.submit(_call(Operation.video_lipsync, Lipsync(video=CLIP, audio=VOICE), CALLBACK))

    content = route.calls.last.request.content
    assert b'name="audio"; filename="audio.wav"' in content and WAV in content
    assert b'name="video"; filename="video.mp4"' in content and MP4 in content
    assert b'name="callback"' in content and CALLBACK.encode() in content
    assert b'name="model"' not in content, "the upstream default (normal) is left to it"


async def test_image_swap_of_two_urls_is_a_get(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.get("/v1/imageswap/create").mock(return_value=_created())
    params = SwapFace(source=FACE_URL, target=PHOTO_URL, enhance_face=False)
    await adapter.submit(_call(Operation.image_swap_face, params, CALLBACK))

    assert _query(route.calls.last.request) == {
        "source_url": "https://example.com/face.png",
        "target_url": "https://example.com/kitten.jpg",
        "use_gfpgan": "false",
        "title": "job_1",
        "callback": CALLBACK,
    }


async def test_enhance_face_forces_the_post_with_use_gfpgan(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.post("/v1/imageswap/create").mock(return_value=_created())
    params = SwapFace(source=FACE_URL, target=PHOTO, enhance_face=True)
    await adapter.submit(_call(Operation.image_swap_face, params))

    content = route.calls.last.request.content
    assert b'name="source"; filename="source.jpg"' in content
    assert b"downloaded https://example.com/face.png" in content
    assert b'name="target"; filename="target.png"' in content and PNG in content
    assert b'name="use_gfpgan"\r\n\r\ntrue' in content


async def test_video_swap_posts_the_picture_and_the_video(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    route = upstream.post("/v1/videoswap/create").mock(return_value=_created())
    params = SwapFaceVideo(source=PHOTO, target=CLIP)
    result = await adapter.submit(_call(Operation.video_swap_face, params))

    assert result == Submitted(TASK_ID, poll_after_s=3.0)
    content = route.calls.last.request.content
    assert b'name="source"; filename="source.png"' in content
    assert b'name="target"; filename="target.mp4"' in content
    assert b"use_gfpgan" not in content


async def test_missing_key_pair_sends_no_authorization(upstream: respx.MockRouter) -> None:
    route = upstream.post("/v1/faces").respond(200, json=FACES_BODY)
    async with httpx.AsyncClient() as client:
        bare = EverypixelAdapter(client, AdapterConfig(base_url=BASE))
        await bare.submit(_call(Operation.image_faces, Faces(image=PHOTO)))
    assert "authorization" not in route.calls.last.request.headers


# status and results ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "extra", "fraction", "queue", "eta"),
    [
        ("PENDING", {"queue": 2}, None, 2, None),
        ("PENDING", {"queue": 5, "eta": 41.5}, None, 5, 41.5),  # the create answer's fields
        ("STARTED", {}, None, 0, None),
        ("STARTED", {"progress": 0.4, "queue": 0}, 0.4, 0, None),
        ("STARTED", {"queue": -1, "eta": -2}, None, None, None),
    ],
)
async def test_running_statuses_are_progress(
    upstream: respx.MockRouter,
    adapter: EverypixelAdapter,
    status: str,
    extra: dict[str, object],
    fraction: float | None,
    queue: int | None,
    eta: float | None,
) -> None:
    """Progress carries the upstream's queue position and ETA where it reports them (the job
    shows them as ``queue_position`` / ``upstream_eta_s``)."""
    route = upstream.get("/v1/status").mock(return_value=_status(status, **extra))
    call = _call(Operation.audio_speech, Speech(text="hi", voice="jack"))
    assert await adapter.poll(call, TASK_ID) == Progress(
        fraction=fraction, poll_after_s=3.0, queue_position=queue, eta_s=eta
    )
    request = route.calls.last.request
    assert _query(request) == {"task_id": TASK_ID}
    assert request.headers["authorization"] == BASIC


@pytest.mark.parametrize(
    ("operation", "params", "content", "declared", "content_type"),
    [
        (Operation.video_lipsync, Lipsync(video=CLIP, audio=VOICE), MP4, "video/mp4", "video/mp4"),
        (
            Operation.video_swap_face,
            SwapFaceVideo(source=PHOTO, target=CLIP),
            MP4,
            "application/octet-stream",
            "video/mp4",
        ),
        (
            Operation.image_swap_face,
            SwapFace(source=PHOTO, target=PHOTO),
            PNG,
            "binary/octet-stream",
            "image/png",
        ),
        (Operation.audio_speech, Speech(text="hi", voice="jack"), WAV, "audio/x-wav", "audio/wav"),
        (Operation.audio_speech, Speech(text="hi", voice="jack"), b"ID3\x04 mp3", "", "audio/mpeg"),
    ],
)
async def test_success_downloads_the_result_without_credentials(
    upstream: respx.MockRouter,
    adapter: EverypixelAdapter,
    operation: Operation,
    params: Params,
    content: bytes,
    declared: str,
    content_type: str,
) -> None:
    upstream.get("/v1/status").mock(return_value=_status("SUCCESS", result=RESULT_URL))
    headers = {"content-type": declared} if declared else {}
    download = upstream.get(RESULT_URL).respond(200, content=content, headers=headers)
    result = await adapter.poll(_call(operation, params), TASK_ID)

    assert result == Succeeded(files=[OutputFile(content, content_type)])
    assert "authorization" not in download.calls.last.request.headers


async def test_a_result_object_holding_the_url_is_read(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.get("/v1/status").mock(return_value=_status("SUCCESS", result={"url": RESULT_URL}))
    upstream.get(RESULT_URL).respond(200, content=MP4, headers={"content-type": "video/mp4"})
    call = _call(Operation.video_lipsync, Lipsync(video=CLIP, audio=VOICE))
    assert await adapter.poll(call, TASK_ID) == Succeeded(files=[OutputFile(MP4, "video/mp4")])


@pytest.mark.parametrize(
    ("result", "download"),
    [
        ("", None),
        ("/relative/path.mp4", None),
        (RESULT_URL, httpx.Response(404)),
        (RESULT_URL, httpx.Response(200, content=PNG, headers={"content-type": "image/png"})),
    ],
)
async def test_unusable_results_raise(
    upstream: respx.MockRouter,
    adapter: EverypixelAdapter,
    result: str,
    download: httpx.Response | None,
) -> None:
    upstream.get("/v1/status").mock(return_value=_status("SUCCESS", result=result))
    if download is not None:
        upstream.get(RESULT_URL).mock(return_value=download)
    call = _call(Operation.video_lipsync, Lipsync(video=CLIP, audio=VOICE))
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(call, TASK_ID)


@pytest.mark.parametrize(
    ("status", "extra", "code", "retryable"),
    [
        ("FAILURE", {}, ErrorCode.upstream_failed, True),
        ("FAILURE", {"message": "Internal processing error"}, ErrorCode.upstream_failed, True),
        ("REVOKED", {}, ErrorCode.upstream_failed, True),
        (
            "FAILURE",
            {"message": "No face detected on the source image."},
            ErrorCode.no_face_detected,
            False,
        ),
        ("FAILURE", {"message": "Face not found"}, ErrorCode.no_face_detected, False),
        (
            "FAILURE",
            {"message": "The request was rejected by content moderation."},
            ErrorCode.content_blocked,
            False,
        ),
        ("FAILURE", {"message": "Unsupported file format"}, ErrorCode.invalid_media, False),
        ("FAILURE", {"message": "Image URL is missing"}, ErrorCode.invalid_media, False),
    ],
)
async def test_failed_tasks_map_through_the_table(
    upstream: respx.MockRouter,
    adapter: EverypixelAdapter,
    status: str,
    extra: dict[str, object],
    code: ErrorCode,
    retryable: bool,
) -> None:
    upstream.get("/v1/status").mock(return_value=_status(status, **extra))
    call = _call(Operation.image_swap_face, SwapFace(source=PHOTO, target=PHOTO))
    result = await adapter.poll(call, TASK_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable, result.provider_code) == (code, retryable, status)
    assert result.message.startswith(f"everypixel task {status}: ")


@pytest.mark.parametrize(
    "body",
    [
        {"status": "SUCCESS", "result": RESULT_URL},
        ["not", "an", "object"],
    ],
)
async def test_unreadable_status_bodies_raise(
    upstream: respx.MockRouter, adapter: EverypixelAdapter, body: object
) -> None:
    upstream.get("/v1/status").respond(200, json=body)
    call = _call(Operation.audio_speech, Speech(text="hi", voice="jack"))
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(call, TASK_ID)


async def test_an_unknown_status_is_logged_raw_and_read_as_running(
    upstream: respx.MockRouter, adapter: EverypixelAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.get("/v1/status").respond(
        200, json={"task_id": TASK_ID, "status": "DONE", "queue": 0, "result": ""}
    )
    call = _call(Operation.audio_speech, Speech(text="hi", voice="jack"))
    assert isinstance(await adapter.poll(call, TASK_ID), Progress)
    assert "'DONE'" in caplog.text


@pytest.mark.parametrize("status", [401, 429, 502])
async def test_a_refused_status_read_is_trouble_reading_not_a_failed_task(
    upstream: respx.MockRouter, adapter: EverypixelAdapter, status: int
) -> None:
    upstream.get("/v1/status").respond(status, json={"status": "error", "message": "busy"})
    call = _call(Operation.audio_speech, Speech(text="hi", voice="jack"))
    assert isinstance(await adapter.poll(call, TASK_ID), PollTrouble)


async def test_an_unknown_task_is_a_failed_task(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.get("/v1/status").respond(404, json={"status": "error", "message": "Task not found."})
    call = _call(Operation.audio_speech, Speech(text="hi", voice="jack"))
    result = await adapter.poll(call, TASK_ID)
    assert isinstance(result, Failed) and result.retryable


# errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "code", "retryable", "retry_after"),
    [
        (400, "Threshold must be float.", ErrorCode.invalid_parameter, False, None),
        (400, "Unsupported file format", ErrorCode.invalid_media, False, None),
        (401, "Invalid client credentials.", ErrorCode.provider_auth_failed, True, None),
        (403, "Forbidden", ErrorCode.provider_auth_failed, True, None),
        (413, "File is too large.", ErrorCode.media_too_large, False, None),
        (429, "Top up your balance", ErrorCode.provider_unavailable, True, None),
        (502, "Too many simultaneous requests", ErrorCode.provider_rate_limited, True, 1.0),
        (418, "I'm a teapot", ErrorCode.upstream_failed, False, None),
    ],
)
async def test_http_errors_map_through_the_table(
    upstream: respx.MockRouter,
    adapter: EverypixelAdapter,
    status: int,
    message: str,
    code: ErrorCode,
    retryable: bool,
    retry_after: float | None,
) -> None:
    upstream.get("/v1/keywords").respond(status, json={"status": "error", "message": message})
    params = ImageKeywords(image=PHOTO_URL, threshold=0.5)
    result = await adapter.submit(_call(Operation.image_keywords, params))
    assert result == Failed(
        code=code,
        message=f"everypixel HTTP {status}: {message}",
        provider_code=f"http_{status}",
        retryable=retryable,
        retry_after_s=retry_after,
    )


async def test_a_502_page_that_is_not_json_is_still_the_rate_limit(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.post("/v1/tts/create").respond(502, text="<html>502 Bad Gateway</html>")
    result = await adapter.submit(_call(Operation.audio_speech, Speech(text="hi", voice="jack")))
    assert isinstance(result, Failed)
    assert (result.code, result.retry_after_s) == (ErrorCode.provider_rate_limited, 1.0)


async def test_an_error_body_with_200_is_read_as_a_refusal(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.post("/v1/tts/create").respond(
        200, json={"status": "error", "message": "Voice 'zed' not found."}
    )
    result = await adapter.submit(_call(Operation.audio_speech, Speech(text="hi", voice="zed")))
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.invalid_parameter, False)


async def test_unknown_task_is_a_retryable_upstream_failure(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.get("/v1/status").respond(404, json={"status": "error", "message": "Task not found."})
    call = _call(Operation.audio_speech, Speech(text="hi", voice="jack"))
    result = await adapter.poll(call, TASK_ID)
    assert isinstance(result, Failed)
    assert (result.code, result.retryable) == (ErrorCode.upstream_failed, True)


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_server_errors_raise_provider_unavailable(
    upstream: respx.MockRouter, adapter: EverypixelAdapter, status: int
) -> None:
    upstream.post("/v1/faces").respond(status, json={"status": "error", "message": "oops"})
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(_call(Operation.image_faces, Faces(image=PHOTO)))


@pytest.mark.parametrize(
    ("path", "operation", "params", "response"),
    [
        (
            "/v1/faces",
            Operation.image_faces,
            Faces(image=PHOTO_URL),
            httpx.Response(200, text="<html>"),
        ),
        (
            "/v1/keywords",
            Operation.image_keywords,
            ImageKeywords(image=PHOTO_URL),
            httpx.Response(200, json={"status": "ok"}),
        ),
        (
            "/v1/image_captioning",
            Operation.image_caption,
            ImageCaption(image=PHOTO_URL),
            httpx.Response(200, json={"caption": "flat"}),
        ),
        (
            "/v1/faces",
            Operation.image_faces,
            Faces(image=PHOTO_URL),
            httpx.Response(200, json={"faces": [{"age": 3}]}),
        ),
    ],
)
async def test_garbage_analysis_answers_raise(
    upstream: respx.MockRouter,
    adapter: EverypixelAdapter,
    path: str,
    operation: Operation,
    params: Params,
    response: httpx.Response,
) -> None:
    upstream.route(path=path).mock(return_value=response)  # keywords by GET, the others POST
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(_call(operation, params))


async def test_a_creation_without_task_id_raises(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.post("/v1/tts/create").respond(201, json={"status": "PENDING"})
    with pytest.raises(ProviderUnavailable):
        await adapter.submit(_call(Operation.audio_speech, Speech(text="hi", voice="jack")))


async def test_timeout_is_upstream_timeout(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.post("/v1/faces").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout):
        await adapter.submit(_call(Operation.image_faces, Faces(image=PHOTO)))


async def test_refused_connection_is_provider_unavailable(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.get("/v1/status").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ProviderUnavailable):
        await adapter.poll(_call(Operation.audio_speech, Speech(text="hi", voice="jack")), TASK_ID)


async def test_unbound_operation_is_refused_without_a_request(
    adapter: EverypixelAdapter,
) -> None:
    params = PARAMS[Operation.image_colorize].model_validate({"image": {"url": "https://e.com/a"}})
    result = await adapter.submit(_call(Operation.image_colorize, params))
    assert isinstance(result, Failed) and result.code is ErrorCode.unsupported_operation


# voices ----------------------------------------------------------------------------------------


async def test_voices_list(upstream: respx.MockRouter, adapter: EverypixelAdapter) -> None:
    route = upstream.get("/v1/tts/voices").respond(
        200,
        json=[
            {"api_name": "jack", "age": "adult", "language": "eng", "gender": "male"},
            {"api_name": "lily", "age": "child", "language": "eng", "gender": "female"},
        ],
    )
    assert await adapter.voices() == [
        Voice(id="jack", language="eng", gender="male", age="adult"),
        Voice(id="lily", language="eng", gender="female", age="child"),
    ]
    assert route.calls.last.request.headers["authorization"] == BASIC


async def test_voices_read_the_documents_single_object(
    upstream: respx.MockRouter, adapter: EverypixelAdapter
) -> None:
    upstream.get("/v1/tts/voices").respond(
        200, json={"api_name": "jack", "age": "adult", "language": "eng", "gender": "male"}
    )
    assert await adapter.voices() == [Voice(id="jack", language="eng", gender="male", age="adult")]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json=[{"name": "jack"}]),
        httpx.Response(200, json="jack"),
        httpx.Response(401, json={"status": "error", "message": "Invalid client credentials."}),
    ],
)
async def test_unusable_voices_answers_raise(
    upstream: respx.MockRouter, adapter: EverypixelAdapter, response: httpx.Response
) -> None:
    upstream.get("/v1/tts/voices").mock(return_value=response)
    with pytest.raises(ProviderUnavailable):
        await adapter.voices()


# bindings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "params", "refused"),
    [
        (Operation.image_keywords, {"image": {"url": "https://e.com/a"}, "lang": "ja"}, "lang"),
        (Operation.image_keywords, {"image": {"url": "https://e.com/a"}, "lang": "pt"}, None),
        (
            Operation.image_swap_face,
            {
                "source": {"url": "https://e.com/a"},
                "target": {"url": "https://e.com/b"},
                "upscale": True,
            },
            "upscale",
        ),
        (
            Operation.image_swap_face,
            {
                "source": {"url": "https://e.com/a"},
                "target": {"url": "https://e.com/b"},
                "output_format": "png",
            },
            "output_format",
        ),
        (
            Operation.image_swap_face,
            {
                "source": {"url": "https://e.com/a"},
                "target": {"url": "https://e.com/b"},
                "enhance_face": True,
            },
            None,
        ),
        (Operation.image_quality, {"image": {"url": "https://e.com/a"}, "model": "ugc"}, None),
        (
            Operation.video_lipsync,
            {
                "video": {"url": "https://e.com/a"},
                "audio": {"url": "https://e.com/b"},
                "model": "fast",
            },
            None,
        ),
        (
            Operation.image_caption,
            {"image": {"url": "https://e.com/a"}, "caption_len": "normal"},
            None,
        ),
    ],
)
def test_bindings_refuse_what_the_document_does_not_offer(
    operation: Operation, params: dict[str, object], refused: str | None
) -> None:
    binding = EverypixelAdapter.bindings[operation]
    assert binding.refuses(PARAMS[operation].model_validate(params)) == refused


def test_every_binding_names_a_documented_limit() -> None:
    limits = EverypixelAdapter.limits
    for binding in EverypixelAdapter.bindings.values():
        assert binding.limit in limits
    assert limits[EverypixelAdapter.bindings[Operation.image_keywords].limit].rate_per_s == 30
    assert limits[EverypixelAdapter.bindings[Operation.image_faces].limit].rate_per_s == 10
    for operation in (
        Operation.audio_speech,
        Operation.video_lipsync,
        Operation.image_swap_face,
        Operation.video_swap_face,
    ):
        assert limits[EverypixelAdapter.bindings[operation].limit].concurrent_jobs == 1
    assert {op.value for op in EverypixelAdapter.bindings} == {
        "image.keywords",
        "image.caption",
        "image.faces",
        "image.quality",
        "video.keywords",
        "image.swap_face",
        "video.swap_face",
        "video.lipsync",
        "audio.speech",
    }
