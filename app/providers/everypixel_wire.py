"""Everypixel Labs on the wire: endpoints, answer shapes and the one mapping table of its
statuses, HTTP errors and failure messages. The adapter (``everypixel.py``) records how the
document is read."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx
from pydantic import BaseModel, Field

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.models import JSONValue
from app.domain.operations import (
    Operation,
)
from app.providers import _http
from app.providers._citations import HTTP_403, HTTP_404, HTTP_413, document
from app.providers._meaning import Meaning, unlisted
from app.providers.base import Failed

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
class TaskShape:
    """How one task kind goes on the wire: its endpoint and its two media fields."""

    endpoint: str
    fields: Sequence[tuple[str, str]]
    """(canonical parameter, upstream multipart field); the GET variant adds ``_url``."""


TASKS: Final[Mapping[Operation, TaskShape]] = {
    Operation.image_swap_face: TaskShape(
        "/v1/imageswap/create", (("source", "source"), ("target", "target"))
    ),
    Operation.video_swap_face: TaskShape(
        "/v1/videoswap/create", (("source", "source"), ("target", "target"))
    ),
    Operation.video_lipsync: TaskShape(
        "/v1/lipsync/create", (("audio", "audio"), ("video", "video"))
    ),
    Operation.audio_speech: TaskShape("/v1/tts/create", ()),
}


# -- the mapping table ---------------------------------------------------------------------------


doc = document(PROVIDER)

Running = Literal["running"]
Done = Literal["done"]

STATUSES: Final[Mapping[str, Running | Done | Meaning]] = {
    "PENDING": "running",
    "STARTED": "running",
    "SUCCESS": "done",
    "FAILURE": Meaning(ErrorCode.upstream_failed, True, doc(817, '"FAILURE"')),
    "REVOKED": Meaning(ErrorCode.upstream_failed, True, doc(113, '"REVOKED"')),
}
"""Every task status of ``/v1/status`` → progress, success, or a failure's default meaning."""

HTTP_ERRORS: Final[Mapping[int, Meaning]] = {
    400: Meaning(ErrorCode.invalid_parameter, False, doc(811, "if you passed an invalid value")),
    401: Meaning(ErrorCode.provider_auth_failed, True, doc(59, "401 Unauthorized")),
    403: Meaning(ErrorCode.provider_auth_failed, True, HTTP_403),
    404: Meaning(ErrorCode.upstream_failed, True, HTTP_404),
    413: Meaning(ErrorCode.media_too_large, False, HTTP_413),
    429: Meaning(ErrorCode.provider_unavailable, True, doc(14, "you will see error 429")),
    502: Meaning(
        ErrorCode.provider_rate_limited, True, doc(83, "HTTP 502 Bad Gateway"), retry_after_s=1.0
    ),
}
"""HTTP errors → meaning (the document: "standard HTTP status codes", line 806); any other
5xx is raised, any other 4xx is ``UNLISTED_ERROR``."""
UNLISTED_ERROR = unlisted()

_MESSAGE = doc(811, "A descriptive error message")
MESSAGES: Final[Sequence[tuple[str, Meaning]]] = (
    ("no face", Meaning(ErrorCode.no_face_detected, False, _MESSAGE)),
    ("face not found", Meaning(ErrorCode.no_face_detected, False, _MESSAGE)),
    ("moderation", Meaning(ErrorCode.content_blocked, False, _MESSAGE)),
    ("unsupported file format", Meaning(ErrorCode.invalid_media, False, _MESSAGE)),
    ("could not download", Meaning(ErrorCode.invalid_media, False, _MESSAGE)),
    ("could not be decoded", Meaning(ErrorCode.invalid_media, False, _MESSAGE)),
    ("is missing", Meaning(ErrorCode.invalid_media, False, _MESSAGE)),
)
"""Failure messages (lower-cased substrings): the upstream's "descriptive error message"
saying, in its own words, more than the status or HTTP code."""


def refine(meaning: Meaning, message: str) -> Meaning:
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


class TaskAnswer(BaseModel):
    task_id: str = Field(min_length=1)
    status: str
    result: str | dict[str, Any] | None = None
    progress: float | None = None
    message: str | None = None
    queue: int | None = None
    """"Position of your task in the processing queue" (0 or 1: processing or about to)."""
    eta: float | None = None
    """Seconds until the task is expected to end, where the upstream says."""


class VoiceAnswer(BaseModel):
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


def unreadable(what: str) -> ProviderUnavailable:
    return _http.unreadable(PROVIDER, what)


def json_body(response: httpx.Response) -> Any:
    return _http.json_body(PROVIDER, response)


def json_object(response: httpx.Response) -> dict[str, Any]:
    return _http.json_object(PROVIDER, response)


def _message(body: _http.ErrorBody) -> str:
    if isinstance(body.json, dict):
        text = body.json.get("message") or body.json.get("detail") or body.json.get("error")
        if text:
            return str(text)
    return body.text


def http_failure(response: httpx.Response) -> Failed | None:
    """``None`` for a 2xx that is not an error body; a ``Failed`` from the table; raises 5xx.

    A 2xx carrying ``"status": "error"`` is read as the 400 it should have been.
    """
    status = response.status_code
    if status < 300:
        body = json_body(response)
        if not (isinstance(body, dict) and body.get("status") == "error"):
            return None
        status = 400
    elif status >= 500 and status not in HTTP_ERRORS:
        raise ProviderUnavailable(f"{PROVIDER} answered HTTP {status}")
    message = _message(_http.error_body(response))
    meaning = HTTP_ERRORS.get(status, UNLISTED_ERROR)
    if status == 400:
        meaning = refine(meaning, message)
    return meaning.failed(
        f"{PROVIDER} HTTP {response.status_code}: {message}", f"http_{response.status_code}"
    )


EXPECTED_MEDIA: Final[Mapping[Operation, str]] = {
    Operation.image_swap_face: "image",
    Operation.video_swap_face: "video",
    Operation.video_lipsync: "video",
    Operation.audio_speech: "audio",
}


def result_url(result: object) -> str:
    if isinstance(result, dict):
        result = result.get("url") or result.get("file_url")
    return _http.result_url(PROVIDER, result, "SUCCESS")


def flag(value: bool) -> str:
    return "true" if value else "false"
