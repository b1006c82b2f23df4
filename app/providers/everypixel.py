"""Everypixel Labs adapter (``providers/everypixel.txt``): analyses answer at once, media tasks
are created and polled.

================================  =====================================================
image.keywords                    ``/v1/keywords`` (``num_keywords`` ≤ 50, ``threshold``,
                                  ``lang``, ``colors``, ``num_colors``)
image.caption                     ``/v1/image_captioning`` (``caption_len``)
image.faces                       ``/v1/faces`` (age, score, box and age class per face)
image.quality                     ``/v1/quality`` (``model`` stock) or ``/v1/quality_ugc``
                                  (``model`` ugc, adds a class 1–5)
video.keywords                    ``/v1/video_keywords`` (``num_keywords``, ``threshold``)
image.swap_face                   ``/v1/imageswap/create`` (``enhance_face`` → ``use_gfpgan``)
video.swap_face                   ``/v1/videoswap/create`` (``enhance_face`` → ``use_gfpgan``)
video.lipsync                     ``/v1/lipsync/create`` (``model`` normal or fast)
audio.speech                      ``/v1/tts/create`` (``voice``, ``text``); voices from
                                  ``GET /v1/tts/voices``
every task                        ``GET /v1/status?task_id=`` until ``SUCCESS``, ``FAILURE``
                                  or ``REVOKED``; then the ``result`` URL is downloaded
================================  =====================================================

Every request signs in with HTTP Basic ``client_id:client_secret`` of the call's key pair. The
result download carries no credentials: it is a file URL on Everypixel's storage.

Outputs in ``Succeeded.data`` (provider-neutral keys):

- image.keywords: ``{"keywords": [{"keyword": str, "score": float}, …]}`` best first, plus
  ``"colors": [{"name": str, "rgb": [r, g, b], "hex": "#rrggbb", "percentage": float}, …]``
  when ``colors`` was asked for;
- video.keywords: ``{"keywords": [{"keyword": str, "score": float}, …]}``;
- image.caption: ``{"caption": str}``;
- image.faces: ``{"faces": [{"age": float, "score": float, "bbox": [x1, y1, x2, y2],
  "class": str}, …]}`` (an empty list when no face was found: a result, not a failure);
- image.quality: ``{"quality": {"score": float, "class": int | None}}`` (``class`` 1–5 from
  the ugc model only).

Swaps, lipsync and speech answer files only (image, MP4 video, audio).

Readings of what the document leaves open (the sandbox emulator keeps the same ones):

- **Media.** An analysis whose input is a client URL is a ``GET`` with ``url`` (the parameters
  in the query string); an uploaded file is read and ``POST``-ed as the multipart field
  ``data`` with the parameters still in the query string ("query parameters"). Tasks go out as
  ``GET`` with ``source_url``/``target_url`` (``audio_url``/``video_url`` for lipsync) when
  every input is a URL, else as a multipart ``POST`` (``source``/``target``,
  ``audio``/``video``), reading URL inputs too: the document's ``GET`` variant lists only
  ``title`` and ``callback`` as optional parameters, so ``use_gfpgan`` (a form field of the
  ``POST``) forces the ``POST``. Lipsync's ``model`` is listed for both. Speech is always a form
  ``POST`` (a text of 10,000 characters does not belong in a URL). Tasks carry ``title`` =
  the gateway job id (it names the output file) and ``callback`` = ``call.callback_url`` when
  the gateway has one.
- **Status.** The universal ``/v1/status`` is used (one example polls
  ``/v1/imageswap/status``; the text names the universal endpoint). ``result`` is "string or
  object": a URL string, or an object holding ``url``/``file_url``. A ``progress`` in [0, 1]
  becomes the progress fraction.
- **Limits** are per key pair, per endpoint: "up to 30 requests per second for most
  endpoints", "the Age Recognition endpoint … up to 10", image captioning and video keywording
  "1 request per second"; the document ties none of them to the account, while it does say the
  tasks run "one at a time per account". So each key pair has a rate budget per endpoint
  (status polls count against the task's budget), and each task kind runs one at a time per key
  pair (``concurrent_jobs=1``). Key pairs of one account still share one upstream queue: pooled
  pairs of one account only wait longer (``PENDING`` with a ``queue`` position), they are never
  refused. Pool key pairs of different accounts to run tasks side by side.
- **HTTP errors** come from one table (``HTTP_ERRORS``). 502 is the document's "too many
  simultaneous requests": ``provider_rate_limited``, retryable after a second (the window is
  one second). 429 is the plan's requests used up ("after exceeding the number of available
  requests from your plan, you will see error 429"): the account is empty, so
  ``provider_unavailable``, retryable elsewhere, as PixelAPI's 402. 401/403 are the key pair
  (``provider_auth_failed``); 400 an invalid value, 413 a file over the size limit, 404 an
  unknown (or expired, after 24 h) task. Other 5xx raise
  :class:`~app.errors.ProviderUnavailable`. Error bodies are ``{"status": "error", "message"}``;
  a 2xx body saying ``"status": "error"`` is read as the 400 it should have been.
- **Task failures.** ``FAILURE`` carries at most a ``message``: by default an upstream failure
  worth a retry elsewhere ("you might only see failure and need to try again");
  ``REVOKED`` (cancelled upstream) likewise. The message refines it through ``MESSAGES``:
  no face found → ``no_face_detected``, moderation → ``content_blocked``, unreadable or missing
  media ("Unsupported file format", "Image URL is missing") → ``invalid_media``; these are the
  user's own and never retried. The same refinement applies to 400 bodies.
- **Prices.** The document quotes none ("see the Pricing page"); the defaults are estimates
  at 1 credit ≈ $0.001: 2 per image analysis, 10 per video keywording, 10 per speech, 20 per
  image swap, 100 per lipsync or video swap.
- Bodies that do not parse, or parse without what is due (``task_id``, ``keywords``, a result
  URL), raise ``ProviderUnavailable``; they never crash the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

import httpx
from pydantic import BaseModel, Field, ValidationError

from app.errors import ErrorCode, ProviderUnavailable
from app.jobs.media import MediaInput
from app.jobs.models import JSONValue
from app.jobs.operations import (
    Faces,
    ImageCaption,
    ImageKeywords,
    ImageQuality,
    Lipsync,
    Operation,
    Speech,
    SwapFace,
    SwapFaceVideo,
    VideoKeywords,
)
from app.media_types import media_type
from app.providers._http import upstream_errors
from app.providers.base import (
    Adapter,
    Binding,
    Call,
    Failed,
    OutputFile,
    PollResult,
    Progress,
    SubmitResult,
    Submitted,
    Succeeded,
    UpstreamLimit,
    Voice,
)

PROVIDER = "everypixel"

LANGUAGES: Final = frozenset({"en", "ru", "es", "fr", "de", "pt", "it"})
"""Keyword languages the document lists."""
MAX_KEYWORDS = 50

QUALITY_ENDPOINTS: Final[Mapping[str, str]] = {"stock": "/v1/quality", "ugc": "/v1/quality_ugc"}
ANALYSES: Final[Mapping[Operation, str]] = {
    Operation.image_keywords: "/v1/keywords",
    Operation.image_caption: "/v1/image_captioning",
    Operation.image_faces: "/v1/faces",
    Operation.video_keywords: "/v1/video_keywords",
}
"""Synchronous endpoints (image.quality picks one of ``QUALITY_ENDPOINTS`` by model)."""


@dataclass(frozen=True)
class _TaskShape:
    """How one task kind goes on the wire: its endpoint and its two media fields."""

    endpoint: str
    fields: Sequence[tuple[str, str]]
    """(canonical parameter, upstream multipart field); the GET variant adds ``_url``."""


TASKS: Final[Mapping[Operation, _TaskShape]] = {
    Operation.image_swap_face: _TaskShape(
        "/v1/imageswap/create", (("source", "source"), ("target", "target"))
    ),
    Operation.video_swap_face: _TaskShape(
        "/v1/videoswap/create", (("source", "source"), ("target", "target"))
    ),
    Operation.video_lipsync: _TaskShape(
        "/v1/lipsync/create", (("audio", "audio"), ("video", "video"))
    ),
    Operation.audio_speech: _TaskShape("/v1/tts/create", ()),
}


# -- the mapping table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Meaning:
    """What an upstream status, HTTP error or failure message means in the gateway's terms."""

    code: ErrorCode
    retryable: bool
    retry_after_s: float | None = None


Running = Literal["running"]
Done = Literal["done"]

STATUSES: Final[Mapping[str, Running | Done | Meaning]] = {
    "PENDING": "running",
    "STARTED": "running",
    "SUCCESS": "done",
    "FAILURE": Meaning(ErrorCode.upstream_failed, retryable=True),
    "REVOKED": Meaning(ErrorCode.upstream_failed, retryable=True),
}
"""Every task status of ``/v1/status`` → progress, success, or a failure's default meaning."""

HTTP_ERRORS: Final[Mapping[int, Meaning]] = {
    400: Meaning(ErrorCode.invalid_parameter, retryable=False),
    401: Meaning(ErrorCode.provider_auth_failed, retryable=True),
    403: Meaning(ErrorCode.provider_auth_failed, retryable=True),
    404: Meaning(ErrorCode.upstream_failed, retryable=True),
    413: Meaning(ErrorCode.media_too_large, retryable=False),
    429: Meaning(ErrorCode.provider_unavailable, retryable=True),
    502: Meaning(ErrorCode.provider_rate_limited, retryable=True, retry_after_s=1.0),
}
"""HTTP errors → meaning; any other 5xx is raised, any other 4xx is ``UNLISTED_ERROR``."""
UNLISTED_ERROR = Meaning(ErrorCode.upstream_failed, retryable=False)

MESSAGES: Final[Sequence[tuple[str, Meaning]]] = (
    ("no face", Meaning(ErrorCode.no_face_detected, retryable=False)),
    ("face not found", Meaning(ErrorCode.no_face_detected, retryable=False)),
    ("moderation", Meaning(ErrorCode.content_blocked, retryable=False)),
    ("unsupported file format", Meaning(ErrorCode.invalid_media, retryable=False)),
    ("could not download", Meaning(ErrorCode.invalid_media, retryable=False)),
    ("could not be decoded", Meaning(ErrorCode.invalid_media, retryable=False)),
    ("is missing", Meaning(ErrorCode.invalid_media, retryable=False)),
)
"""Failure messages (lower-cased substrings) that say more than the status or HTTP code."""


def _refine(meaning: Meaning, message: str) -> Meaning:
    lowered = message.lower()
    for needle, refined in MESSAGES:
        if needle in lowered:
            return refined
    return meaning


# -- bodies --------------------------------------------------------------------------------------


class _Keyword(BaseModel):
    keyword: str
    score: float


class _Color(BaseModel):
    name: str
    rgb: list[int]
    hex: str
    percentage: float


class _KeywordsAnswer(BaseModel):
    keywords: list[_Keyword]
    colors: list[_Color] | None = None


class _Caption(BaseModel):
    caption: str


class _CaptionAnswer(BaseModel):
    result: _Caption


class _Face(BaseModel):
    age: float
    score: float
    bbox: list[float] = Field(min_length=4, max_length=4)
    class_: str = Field(alias="class")


class _FacesAnswer(BaseModel):
    faces: list[_Face]


class _Quality(BaseModel):
    score: float
    class_: int | None = Field(default=None, alias="class")


class _QualityAnswer(BaseModel):
    quality: _Quality


class _Task(BaseModel):
    task_id: str = Field(min_length=1)
    status: str
    result: str | dict[str, Any] | None = None
    progress: float | None = None
    message: str | None = None


class _VoiceAnswer(BaseModel):
    api_name: str
    language: str | None = None
    gender: str | None = None
    age: str | None = None


def _keywords_data(body: dict[str, Any]) -> dict[str, JSONValue]:
    answer = _KeywordsAnswer.model_validate(body)
    data: dict[str, JSONValue] = {
        "keywords": [{"keyword": k.keyword, "score": k.score} for k in answer.keywords]
    }
    if answer.colors is not None:
        data["colors"] = [c.model_dump() for c in answer.colors]
    return data


def _caption_data(body: dict[str, Any]) -> dict[str, JSONValue]:
    return {"caption": _CaptionAnswer.model_validate(body).result.caption}


def _faces_data(body: dict[str, Any]) -> dict[str, JSONValue]:
    faces: list[JSONValue] = [
        {"age": f.age, "score": f.score, "bbox": list(f.bbox), "class": f.class_}
        for f in _FacesAnswer.model_validate(body).faces
    ]
    return {"faces": faces}


def _quality_data(body: dict[str, Any]) -> dict[str, JSONValue]:
    quality = _QualityAnswer.model_validate(body).quality
    return {"quality": {"score": quality.score, "class": quality.class_}}


READERS: Final[Mapping[Operation, Callable[[dict[str, Any]], dict[str, JSONValue]]]] = {
    Operation.image_keywords: _keywords_data,
    Operation.video_keywords: _keywords_data,
    Operation.image_caption: _caption_data,
    Operation.image_faces: _faces_data,
    Operation.image_quality: _quality_data,
}
"""Each analysis's success body → canonical ``data``."""


def _unreadable(what: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"{PROVIDER} answered with an unreadable body ({what})")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise _unreadable("not JSON") from exc


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = _json(response)
    if not isinstance(body, dict):
        raise _unreadable("not a JSON object")
    return body


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        text = body.get("message") or body.get("detail") or body.get("error")
        if text:
            return str(text)
    return response.reason_phrase


def _failure(response: httpx.Response) -> Failed | None:
    """``None`` for a 2xx that is not an error body; a ``Failed`` from the table; raises 5xx.

    A 2xx carrying ``"status": "error"`` is read as the 400 it should have been.
    """
    status = response.status_code
    if status < 300:
        body = _json(response)
        if not (isinstance(body, dict) and body.get("status") == "error"):
            return None
        status = 400
    elif status >= 500 and status not in HTTP_ERRORS:
        raise ProviderUnavailable(f"{PROVIDER} answered HTTP {status}")
    message = _message(response)
    meaning = HTTP_ERRORS.get(status, UNLISTED_ERROR)
    if status == 400:
        meaning = _refine(meaning, message)
    return Failed(
        code=meaning.code,
        message=f"{PROVIDER} HTTP {response.status_code}: {message}",
        provider_code=f"http_{response.status_code}",
        retryable=meaning.retryable,
        retry_after_s=meaning.retry_after_s,
    )


EXPECTED_MEDIA: Final[Mapping[Operation, str]] = {
    Operation.image_swap_face: "image",
    Operation.video_swap_face: "video",
    Operation.video_lipsync: "video",
    Operation.audio_speech: "audio",
}


def _output_type(response: httpx.Response, kind: str) -> str:
    """The output's media type: the declared one when it fits, else sniffed from the bytes."""
    declared = response.headers.get("content-type", "")
    found = media_type(response.content, kind, declared)
    if found is None:
        raise _unreadable(f"result is {declared or 'untyped'}, not {kind}")
    return found


def _result_url(result: object) -> str:
    if isinstance(result, dict):
        result = result.get("url") or result.get("file_url")
    if not isinstance(result, str) or not result.startswith(("http://", "https://")):
        raise _unreadable("SUCCESS without a result URL")
    return result


def _flag(value: bool) -> str:
    return "true" if value else "false"


class EverypixelAdapter(Adapter):
    name: ClassVar[str] = PROVIDER
    limits: ClassVar[Mapping[str, UpstreamLimit]] = {
        "keywords": UpstreamLimit(rate_per_s=30),
        "quality": UpstreamLimit(rate_per_s=30),
        "faces": UpstreamLimit(rate_per_s=10),
        "caption": UpstreamLimit(rate_per_s=1),
        "video_keywords": UpstreamLimit(rate_per_s=1),
        "tts": UpstreamLimit(rate_per_s=30, concurrent_jobs=1),
        "lipsync": UpstreamLimit(rate_per_s=30, concurrent_jobs=1),
        "imageswap": UpstreamLimit(rate_per_s=30, concurrent_jobs=1),
        "videoswap": UpstreamLimit(rate_per_s=30, concurrent_jobs=1),
    }
    bindings: ClassVar[Mapping[Operation, Binding]] = {
        Operation.image_keywords: Binding(
            parameters=frozenset(
                {"image", "num_keywords", "threshold", "lang", "colors", "num_colors"}
            ),
            values={"lang": LANGUAGES},
            price=2,
            limit="keywords",
        ),
        Operation.image_caption: Binding(
            parameters=frozenset({"image", "caption_len"}), price=2, limit="caption"
        ),
        Operation.image_faces: Binding(parameters=frozenset({"image"}), price=2, limit="faces"),
        Operation.image_quality: Binding(
            parameters=frozenset({"image", "model"}),
            values={"model": frozenset(QUALITY_ENDPOINTS)},
            price=2,
            limit="quality",
        ),
        Operation.video_keywords: Binding(
            parameters=frozenset({"video", "num_keywords", "threshold"}),
            price=10,
            limit="video_keywords",
        ),
        Operation.image_swap_face: Binding(
            parameters=frozenset({"source", "target", "enhance_face"}), price=20, limit="imageswap"
        ),
        Operation.video_swap_face: Binding(
            parameters=frozenset({"source", "target", "enhance_face"}),
            price=100,
            limit="videoswap",
        ),
        Operation.video_lipsync: Binding(
            parameters=frozenset({"video", "audio", "model"}),
            values={"model": frozenset({"normal", "fast"})},
            price=100,
            limit="lipsync",
        ),
        Operation.audio_speech: Binding(
            parameters=frozenset({"text", "voice"}), price=10, limit="tts"
        ),
    }

    def _auth(self, call: Call | None = None) -> httpx.BasicAuth | None:
        pool = self.config.credentials
        credential = self.credential(call) if call is not None else (pool[0] if pool else None)
        if credential is None or credential.client_id is None:
            return None
        return httpx.BasicAuth(credential.client_id, credential.client_secret or "")

    async def submit(self, call: Call) -> SubmitResult:
        if call.operation in READERS:
            return await self._analyse(call)
        if call.operation in TASKS:
            return await self._create(call)
        return Failed(
            ErrorCode.unsupported_operation, f"{PROVIDER} does not serve {call.operation}"
        )

    # analyses ---------------------------------------------------------------------------------

    async def _analyse(self, call: Call) -> SubmitResult:
        params = call.params
        query: dict[str, str] = {}
        if isinstance(params, ImageKeywords | VideoKeywords):
            if params.num_keywords is not None:
                query["num_keywords"] = str(min(params.num_keywords, MAX_KEYWORDS))
            if params.threshold is not None:
                query["threshold"] = str(params.threshold)
        if isinstance(params, ImageKeywords):
            if params.lang is not None:
                query["lang"] = params.lang
            if params.colors is not None:
                query["colors"] = _flag(params.colors)
            if params.num_colors is not None:
                query["num_colors"] = str(params.num_colors)
        if isinstance(params, ImageCaption) and params.caption_len is not None:
            query["caption_len"] = params.caption_len
        if isinstance(params, ImageQuality):
            endpoint = QUALITY_ENDPOINTS[params.model]
            ref: MediaInput = params.image
        elif isinstance(params, VideoKeywords):
            endpoint, ref = ANALYSES[call.operation], params.video
        else:
            assert isinstance(params, ImageKeywords | ImageCaption | Faces)
            endpoint, ref = ANALYSES[call.operation], params.image

        url = f"{self.base_url}{endpoint}"
        request: dict[str, Any] = {"auth": self._auth(call), "timeout": self.config.timeout_s}
        if ref.url is not None:
            query["url"] = call.media.public_url(ref)
            with upstream_errors(PROVIDER):
                response = await self.client.get(url, params=query, **request)
        else:
            media = await call.media.read(ref)
            upload = (_file_name("data", media.content_type), media.content, media.content_type)
            files = {"data": upload}
            with upstream_errors(PROVIDER):
                response = await self.client.post(url, params=query, files=files, **request)
        if (failed := _failure(response)) is not None:
            return failed
        try:
            return Succeeded(data=READERS[call.operation](_json_object(response)))
        except ValidationError as exc:
            raise _unreadable(f"{endpoint} answer without its documented fields") from exc

    # tasks ------------------------------------------------------------------------------------

    async def _create(self, call: Call) -> SubmitResult:
        shape = TASKS[call.operation]
        params = call.params
        fields: dict[str, str] = {"title": call.job_id}
        if call.callback_url:
            fields["callback"] = call.callback_url
        if isinstance(params, Speech):
            fields |= {"voice": params.voice, "text": params.text}
        if isinstance(params, Lipsync) and params.model is not None:
            fields["model"] = params.model
        post_only = False
        if isinstance(params, SwapFace | SwapFaceVideo) and params.enhance_face is not None:
            fields["use_gfpgan"] = _flag(params.enhance_face)
            post_only = params.enhance_face

        refs: list[tuple[str, MediaInput]] = [
            (upstream, getattr(params, canonical)) for canonical, upstream in shape.fields
        ]
        url = f"{self.base_url}{shape.endpoint}"
        request: dict[str, Any] = {"auth": self._auth(call), "timeout": self.config.timeout_s}
        if refs and not post_only and all(ref.url is not None for _, ref in refs):
            query = fields | {f"{name}_url": call.media.public_url(ref) for name, ref in refs}
            with upstream_errors(PROVIDER):
                response = await self.client.get(url, params=query, **request)
        else:
            files: dict[str, tuple[str, bytes, str]] = {}
            for name, ref in refs:
                media = await call.media.read(ref)
                files[name] = (
                    _file_name(name, media.content_type),
                    media.content,
                    media.content_type,
                )
            with upstream_errors(PROVIDER):
                response = await self.client.post(url, data=fields, files=files or None, **request)
        if (failed := _failure(response)) is not None:
            return failed
        try:
            task = _Task.model_validate(_json_object(response))
        except ValidationError as exc:
            raise _unreadable("no task_id") from exc
        return Submitted(task.task_id, poll_after_s=self.config.poll_interval_s)

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        with upstream_errors(PROVIDER):
            response = await self.client.get(
                f"{self.base_url}/v1/status",
                params={"task_id": provider_job_id},
                auth=self._auth(call),
                timeout=self.config.timeout_s,
            )
        if (failed := _failure(response)) is not None:
            return failed
        try:
            task = _Task.model_validate(_json_object(response))
        except ValidationError as exc:
            raise _unreadable("no task status") from exc
        meaning = STATUSES.get(task.status)
        if meaning is None:
            raise _unreadable(f"unknown status {task.status!r}")
        if meaning == "running":
            fraction = (
                task.progress if task.progress is not None and 0 <= task.progress <= 1 else None
            )
            return Progress(fraction=fraction, poll_after_s=self.config.poll_interval_s)
        if isinstance(meaning, Meaning):
            detail = task.message or (task.result if isinstance(task.result, str) else None)
            meaning = _refine(meaning, detail or "")
            return Failed(
                meaning.code,
                f"{PROVIDER} task {task.status}: {detail or 'no message'}",
                provider_code=task.status,
                retryable=meaning.retryable,
            )
        return await self._download(call.operation, _result_url(task.result))

    async def _download(self, operation: Operation, url: str) -> Succeeded:
        with upstream_errors(PROVIDER):
            response = await self.client.get(url, timeout=self.config.timeout_s)
        if response.status_code != 200 or not response.content:
            raise ProviderUnavailable(
                f"{PROVIDER} result download answered HTTP {response.status_code}"
            )
        content_type = _output_type(response, EXPECTED_MEDIA[operation])
        return Succeeded(files=[OutputFile(response.content, content_type)])

    # catalog ----------------------------------------------------------------------------------

    async def voices(self) -> list[Voice]:
        """``GET /v1/tts/voices`` (free): a list of voices, or the document's single object."""
        with upstream_errors(PROVIDER):
            response = await self.client.get(
                f"{self.base_url}/v1/tts/voices", auth=self._auth(), timeout=self.config.timeout_s
            )
        if (failed := _failure(response)) is not None:
            raise ProviderUnavailable(failed.message)
        body = _json(response)
        if isinstance(body, dict):
            body = body.get("voices", [body])
        if not isinstance(body, list):
            raise _unreadable("voices are not a list")
        try:
            answers = [_VoiceAnswer.model_validate(entry) for entry in body]
        except ValidationError as exc:
            raise _unreadable("a voice without api_name") from exc
        return [
            Voice(id=v.api_name, language=v.language, gender=v.gender, age=v.age) for v in answers
        ]


_EXTENSIONS: Final[Mapping[str, str]] = {"jpeg": "jpg", "mpeg": "mp3", "wave": "wav"}


def _file_name(stem: str, content_type: str) -> str:
    """A multipart file name with the extension of the media type (``source.png``)."""
    subtype = content_type.rpartition("/")[2].removeprefix("x-") or "bin"
    return f"{stem}.{_EXTENSIONS.get(subtype, subtype)}"
