"""Perfect Corp AI API, the wire: which task serves which call, the bodies, and the error table.

Every path is ``/s2s/v1.0/<kind>/<feature>`` under the API server (the readings of the
paths, of the bodies and of the error envelope are recorded in
:mod:`app.providers.perfectcorp`, which uses this module).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.operations import GenerateImage, Hairstyle, Operation, Params, Upscale
from app.providers import _http
from app.providers._citations import HTTP_400, HTTP_401, HTTP_403, HTTP_404, HTTP_413, document
from app.providers._meaning import Meaning, unlisted
from app.providers.base import Failed

PROVIDER = "perfectcorp"
API_PREFIX = "/s2s/v1.0"
AUTH_PATH = f"{API_PREFIX}/client/auth"

JPEG = "image/jpeg"
PNG = "image/png"

STYLE_ID = re.compile(r"(\d{1,20}):(\d{1,20})")
"""A canonical ``style_id`` here: ``<style_group_id>:<style_id>`` (tasks need both), matched
whole (``fullmatch``): ``$`` would let a trailing newline through into the job."""
DEFAULT_SCALE = 2
"""``scale`` is required by AI Photo Enhance; a client that sends none gets 2×."""


@dataclass(frozen=True)
class Feature:
    """One AI task of the document: its path segment and what its payload carries."""

    slug: str
    files: Mapping[str, str]
    """Canonical media field → ``file_sets`` key, in upload order."""
    styled: bool = False
    """The task takes ``style_group_id`` + ``style_ids`` (and has style listings)."""
    output_ext: str = "jpg"


HAIR_VARIANTS: Final[Mapping[str, str]] = {
    "style": "hair-style",
    "wig": "wig",
    "extension": "hair-ext",
    "bangs": "hair-bang",
    "volume": "hair-vol",
}
"""Canonical ``variant`` of image.hairstyle → the task's path segment."""

_SRC = {"image": "src_ids"}

FEATURES: Final[Mapping[tuple[Operation, str | None], Feature]] = {
    **{
        (Operation.image_hairstyle, variant): Feature(slug, _SRC, styled=True)
        for variant, slug in HAIR_VARIANTS.items()
    },
    (Operation.image_age, None): Feature("aging", _SRC),
    (Operation.image_transfer_makeup, None): Feature(
        "mu-trans-rec", {"image": "src_ids", "reference": "ref_ids"}
    ),
    (Operation.image_remove_object, None): Feature(
        "obj-removal", {"image": "src_ids", "mask": "mask_ids"}
    ),
    (Operation.image_colorize, None): Feature("colorize", _SRC),
    (Operation.image_remove_background, None): Feature("sod", _SRC, output_ext="png"),
    (Operation.image_upscale, None): Feature("enhance", _SRC),
    (Operation.image_generate, None): Feature("text-to-image", {}, styled=True),
}
"""Every task this adapter runs, by (operation, hairstyle variant)."""

OUTPUT_EXTENSIONS: Final[Mapping[str, str]] = {"jpeg": "jpg", "webp": "webp", "png": "png"}
"""Canonical ``output_format`` → the document's ``output_ext``."""


def feature_for(operation: Operation, params: Params | None = None) -> Feature | None:
    variant: str | None = None
    if operation is Operation.image_hairstyle:
        variant = params.variant if isinstance(params, Hairstyle) else "style"
    return FEATURES.get((operation, variant))


def styled_feature(operation: Operation, variant: str | None) -> Feature | None:
    """The task whose styles ``GET /v1/styles?operation=&variant=`` lists, if it has any."""
    key = (variant or "style") if operation is Operation.image_hairstyle else None
    feature = FEATURES.get((operation, key))
    return feature if feature is not None and feature.styled else None


def parse_style_id(style_id: str) -> tuple[int, int] | None:
    match = STYLE_ID.fullmatch(style_id)
    return (int(match[1]), int(match[2])) if match else None


def action_params(feature: Feature, params: Params) -> dict[str, Any] | str:
    """The action's ``params`` object, or why the call cannot be sent (a message)."""
    action: dict[str, Any] = {}
    if feature.styled:
        style_id = getattr(params, "style_id", None)
        ids = parse_style_id(style_id) if isinstance(style_id, str) else None
        if ids is None:
            return (
                f"{PROVIDER} {feature.slug} needs a style_id '<group>:<style>' from GET /v1/styles"
            )
        action = {"style_group_id": ids[0], "style_ids": [ids[1]]}
    if isinstance(params, GenerateImage):
        action = {"prompt": params.prompt, **action}
    if isinstance(params, Upscale):
        action["scale"] = params.scale or DEFAULT_SCALE
    return action


def output_ext(feature: Feature, params: Params) -> str:
    fmt = getattr(params, "output_format", None)
    return OUTPUT_EXTENSIONS[fmt] if isinstance(fmt, str) else feature.output_ext


def task_body(
    feature: Feature,
    request_id: int,
    file_ids: Mapping[str, str],
    action: Mapping[str, Any],
    ext: str,
) -> dict[str, Any]:
    """``POST task/<feature>``: one action (id 0), one file per ``file_sets`` key."""
    payload: dict[str, Any] = {}
    if feature.files:
        payload["file_sets"] = {key: [file_ids[field]] for field, key in feature.files.items()}
    payload["actions"] = [{"id": 0, "params": dict(action)} if action else {"id": 0}]
    payload["output_ext"] = ext
    return {"request_id": request_id, "payload": payload}


# answers ----------------------------------------------------------------------------------------


doc = document(PROVIDER)


def _user(code: ErrorCode, line: int, words: str) -> Meaning:
    return Meaning(code, False, doc(line, words))


def _theirs(code: ErrorCode, line: int, words: str) -> Meaning:
    return Meaning(code, True, doc(line, words))


ERRORS: Final[Mapping[str, Meaning]] = {
    # The document's "Error Codes" table (a task's ``error`` when its status is ``error``).
    "exceed_max_filesize": _user(ErrorCode.media_too_large, 94, "exceed_max_filesize"),
    "invalid_parameter": _user(ErrorCode.invalid_parameter, 95, "invalid_parameter"),
    "error_download_image": _theirs(ErrorCode.invalid_media, 96, "error_download_image"),
    "error_download_mask": _theirs(ErrorCode.invalid_media, 97, "error_download_mask"),
    "error_decode_image": _user(ErrorCode.invalid_media, 98, "error_decode_image"),
    "error_decode_mask": _user(ErrorCode.invalid_media, 99, "error_decode_mask"),
    "error_nsfw_content_detected": _user(
        ErrorCode.content_blocked, 100, "error_nsfw_content_detected"
    ),
    "error_no_face": _user(ErrorCode.no_face_detected, 101, "error_no_face"),
    "error_pose": _user(ErrorCode.invalid_media, 102, "error_pose"),
    "error_face_parsing": _user(ErrorCode.no_face_detected, 103, "error_face_parsing"),
    "error_inference": _theirs(ErrorCode.upstream_failed, 104, "error_inference"),
    "exceed_nsfw_retry_limits": _user(ErrorCode.content_blocked, 105, "exceed_nsfw_retry_limits"),
    "error_upload": _theirs(ErrorCode.upstream_failed, 106, "error_upload"),
    "error_multiple_people": _user(ErrorCode.invalid_media, 107, "error_multiple_people"),
    "error_no_shoulder": _user(ErrorCode.invalid_media, 108, "error_no_shoulder"),
    "error_large_face_angle": _user(ErrorCode.invalid_media, 109, "error_large_face_angle"),
    "unknown_internal_error": _theirs(ErrorCode.upstream_failed, 110, "unknown_internal_error"),
}
"""The document's engine errors → canonical code and whether to retry."""

HTTP_ERRORS: Final[Mapping[int, Meaning]] = {
    400: Meaning(ErrorCode.invalid_parameter, False, HTTP_400),
    401: Meaning(ErrorCode.provider_auth_failed, True, HTTP_401),
    403: Meaning(ErrorCode.provider_auth_failed, True, HTTP_403),
    404: Meaning(ErrorCode.upstream_failed, True, HTTP_404),
    413: Meaning(ErrorCode.media_too_large, False, HTTP_413),
    429: Meaning(ErrorCode.provider_rate_limited, True, doc(35, "429 Too Many Requests")),
}
"""HTTP refusals whose body names no ``error_code``: 429 from the document's rate limits, the
others by the HTTP standard (the document: "Client error responses (400 - 499)", line 91)."""

ENGINE_OTHERS = "unknown_internal_error"
"""The document's "Others": an engine error not in the table reads as this one."""
UNLISTED_HTTP = unlisted()
"""A 4xx status the table does not know."""
NAMED_UNLISTED = unlisted(retryable=True)
"""A 400 whose body names an ``error_code`` (``InvalidTaskId``, ``CreditInsufficiency``…):
the document names none, so the code is kept and not read as the client's fault; the gateway
cannot tell whose fault it is, so another attempt may be made."""
TASK_LOST = "InvalidTaskId"
"""The answer to a poll of a task the server dropped (not polled for 10 s) or never had."""

Status = Literal["running", "success", "error"]
STATUSES: Final[Mapping[str, Status]] = {
    "running": "running",
    "success": "success",
    "error": "error",
}
"""The task status vocabulary of ``GET task/<feature>``."""


def engine_meaning(error: str) -> Meaning:
    return ERRORS.get(error) or ERRORS[ENGINE_OTHERS]


def unreadable(what: str) -> ProviderUnavailable:
    return _http.unreadable(PROVIDER, what)


def result_object(response: httpx.Response) -> dict[str, Any]:
    """The ``result`` object of a 2xx envelope ``{"status": 200, "result": {…}}``."""
    body = _http.json_body(PROVIDER, response)
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        raise unreadable("no result object")
    return result


@dataclass(frozen=True)
class HttpError:
    """A non-2xx answer, read: the upstream's code, its text, and its table meaning."""

    provider_code: str
    message: str
    meaning: Meaning
    retry_after_s: float | None

    def failed(self, status: int) -> Failed:
        text = f"{PROVIDER} HTTP {status}: {self.message}"
        return self.meaning.failed(text, self.provider_code, self.retry_after_s)


def read_http_error(response: httpx.Response) -> HttpError:
    """Read a 4xx (raises :class:`ProviderUnavailable` for a 5xx)."""
    status = response.status_code
    if status >= 500:
        raise ProviderUnavailable(f"{PROVIDER} answered HTTP {status}")
    body = _http.error_body(response)
    code: str | None = None
    text = body.text
    if isinstance(body.json, dict):
        named = body.json.get("error_code")
        code = named if isinstance(named, str) and named else None
        text = str(body.json.get("error") or code or text)
    meaning = HTTP_ERRORS.get(status, UNLISTED_HTTP)
    if code is not None and status == 400:
        meaning = NAMED_UNLISTED
    retry_after = _http.retry_after(response.headers) if status == 429 else None
    return HttpError(code or f"http_{status}", text, meaning, retry_after)
