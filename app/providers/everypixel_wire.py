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
from app.domain.media_types import media_type
from app.domain.models import JSONValue
from app.domain.operations import (
    Operation,
)
from app.providers.base import (
    Failed,
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
    return ProviderUnavailable(f"{PROVIDER} answered with an unreadable body ({what})")


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise unreadable("not JSON") from exc


def json_object(response: httpx.Response) -> dict[str, Any]:
    body = json_body(response)
    if not isinstance(body, dict):
        raise unreadable("not a JSON object")
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
    message = _message(response)
    meaning = HTTP_ERRORS.get(status, UNLISTED_ERROR)
    if status == 400:
        meaning = refine(meaning, message)
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


def output_type(response: httpx.Response, kind: str) -> str:
    """The output's media type: the declared one when it fits, else sniffed from the bytes."""
    declared = response.headers.get("content-type", "")
    found = media_type(response.content, kind, declared)
    if found is None:
        raise unreadable(f"result is {declared or 'untyped'}, not {kind}")
    return found


def result_url(result: object) -> str:
    if isinstance(result, dict):
        result = result.get("url") or result.get("file_url")
    if not isinstance(result, str) or not result.startswith(("http://", "https://")):
        raise unreadable("SUCCESS without a result URL")
    return result


def flag(value: bool) -> str:
    return "true" if value else "false"
