"""ImagePipeline on the wire: request shapes per operation, parameter checks, and the one
mapping table of its statuses and failure codes. The adapter (``imagepipeline.py``) records
how the document is read."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal

import httpx

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.media_types import media_type
from app.domain.operations import (
    CloneVoice,
    Operation,
    Params,
    SwapFace,
    TryOn,
)
from app.providers.base import (
    Call,
    Failed,
)

PROVIDER = "imagepipeline"

GENDERS: Final[Mapping[str, str]] = {"male": "man", "female": "woman"}
CLOTHING_TYPES: Final[Mapping[str, str]] = {
    "upper_body": "upper-body garment",
    "lower_body": "lower-body garment",
    "dress": "dress",
    "full_body": "full-body outfit",
}
"""Canonical try-on ``category`` → ImagePipeline's free-text ``clothing_type``."""

IMAGE_SIDES = range(1, 2049)
"""Documented ``width``/``height``: "max 2048" (try-on: 256 to 2048)."""
TRY_ON_SIDES = range(256, 2049)
MAX_EXAGGERATION = 1.0
BALANCE_TTL_S = 30 * 24 * 3600.0


@dataclass(frozen=True)
class Meaning:
    """What an upstream status, failure code or HTTP error means in the gateway's terms."""

    code: ErrorCode
    retryable: bool


Running = Literal["running"]
Completed = Literal["completed"]

MEANINGS: Final[Mapping[str, Running | Completed | Meaning]] = {
    # job statuses
    "queued": "running",
    "pending": "running",
    "processing": "running",
    "completed": "completed",
    "failed": Meaning(ErrorCode.upstream_failed, retryable=True),
    "cancelled": Meaning(ErrorCode.upstream_failed, retryable=False),
    # failure_reason_code of a failed job (or of an HTTP error body)
    "RATE_LIMIT_EXCEEDED": Meaning(ErrorCode.provider_rate_limited, retryable=True),
    "CONCURRENT_JOBS_EXCEEDED": Meaning(ErrorCode.provider_rate_limited, retryable=True),
    "INSUFFICIENT_CREDITS": Meaning(ErrorCode.provider_unavailable, retryable=True),
    "CREDIT_CHARGE_FAILED": Meaning(ErrorCode.provider_unavailable, retryable=True),
    "INPUT_INVALID": Meaning(ErrorCode.invalid_parameter, retryable=False),
    "INPUT_INVALID/content policy": Meaning(ErrorCode.content_blocked, retryable=False),
    "INPUT_INVALID/no face": Meaning(ErrorCode.no_face_detected, retryable=False),
    "MODEL_ERROR": Meaning(ErrorCode.upstream_failed, retryable=True),
    "MODEL_UNAVAILABLE": Meaning(ErrorCode.provider_unavailable, retryable=True),
    "STORAGE_ERROR": Meaning(ErrorCode.upstream_failed, retryable=True),
    "TIMEOUT": Meaning(ErrorCode.upstream_timeout, retryable=True),
    "INTERNAL_ERROR": Meaning(ErrorCode.upstream_failed, retryable=True),
    "CANCELLED": Meaning(ErrorCode.upstream_failed, retryable=False),
    # HTTP answers (5xx raises ProviderUnavailable)
    "HTTP 400": Meaning(ErrorCode.invalid_parameter, retryable=False),
    "HTTP 401": Meaning(ErrorCode.provider_auth_failed, retryable=True),
    "HTTP 402": Meaning(ErrorCode.provider_unavailable, retryable=True),
    "HTTP 403": Meaning(ErrorCode.provider_auth_failed, retryable=True),
    "HTTP 404": Meaning(ErrorCode.upstream_failed, retryable=True),
    "HTTP 413": Meaning(ErrorCode.media_too_large, retryable=False),
    "HTTP 422": Meaning(ErrorCode.invalid_parameter, retryable=False),
    "HTTP 429": Meaning(ErrorCode.provider_rate_limited, retryable=True),
}
"""The one table: statuses, failure reason codes (``CODE/hint`` refines a code by the words
of its ``error``), and HTTP statuses → progress, success, or a failure's meaning."""
UNLISTED: Final = Meaning(ErrorCode.upstream_failed, retryable=False)


def _failure_meaning(code: object, error: str) -> tuple[str, Meaning]:
    """The table entry of a failure reason code, refined by the words of its error."""
    if not isinstance(code, str) or not isinstance(MEANINGS.get(code), Meaning):
        return (code if isinstance(code, str) else "failed"), _meaning("failed")
    text = error.lower()
    for key, meaning in MEANINGS.items():
        prefix, _, hint = key.partition("/")
        if prefix == code and hint and hint in text and isinstance(meaning, Meaning):
            return code, meaning
    return code, _meaning(code)


def _meaning(key: str) -> Meaning:
    meaning = MEANINGS.get(key, UNLISTED)
    return meaning if isinstance(meaning, Meaning) else UNLISTED


def status_meaning(status: object) -> Running | Completed | Meaning | None:
    """A job status's entry (statuses are the table's lower-case keys)."""
    if not isinstance(status, str) or not status.islower():
        return None
    return MEANINGS.get(status)


# requests ---------------------------------------------------------------------------------


def _language_id(language: str) -> str:
    return language.replace("_", "-").split("-")[0].lower()


CONVERT: Final[Mapping[str, Callable[[Any], Any]]] = {
    "gender": GENDERS.__getitem__,
    "category": CLOTHING_TYPES.__getitem__,
    "language": _language_id,
    "upscale": lambda upscale: None if upscale else 1.0,
    "enhance_face": lambda enhance: None if enhance else 0.0,
}
"""Canonical values that change on the wire (``None``: send nothing, the upstream default)."""


@dataclass(frozen=True)
class Wire:
    """One endpoint's request: media inputs and parameters, canonical name → upstream name."""

    endpoint: str
    media: Mapping[str, str]
    fields: Mapping[str, str]
    """In sending order: a later entry with the same upstream name overrides an earlier one."""

    @property
    def parameters(self) -> frozenset[str]:
        return frozenset(self.media) | frozenset(self.fields)

    def body(self, call: Call) -> dict[str, Any]:
        params = call.params
        body: dict[str, Any] = {}
        for canonical, wire in self.media.items():
            body[wire] = call.media.public_url(getattr(params, canonical))
        for canonical, wire in self.fields.items():
            value = getattr(params, canonical)
            if value is not None and canonical in CONVERT:
                value = CONVERT[canonical](value)
            if value is not None:
                body[wire] = value
        return body


def _same(*names: str) -> dict[str, str]:
    return {name: name for name in names}


_IMAGE = _same("seed", "palette", "output_format", "profile_id")
WIRES: Final[Mapping[Operation, Wire]] = {
    Operation.image_swap_face: Wire(
        "/identity/faceswap/image/v1",
        _same("target", "source"),
        {
            "upscale": "upscale",
            "scale": "upscale",
            "enhance_face": "restore_weight",
            "restore_weight": "restore_weight",
        }
        | _same("palette", "output_format", "profile_id"),
    ),
    Operation.image_lock_identity: Wire(
        "/identity/lock/image/v1",
        {"face": "input_image"},
        _same("prompt", "negative_prompt", "width", "height", "guidance_scale")
        | {"steps": "num_inference_steps"}
        | _IMAGE,
    ),
    Operation.image_replace_identity: Wire(
        "/identity/replace/image/v1",
        {"image": "input_image"},
        _same("prompt", "use_segmentation", "tone_correction") | _IMAGE,
    ),
    Operation.image_instamodel: Wire(
        "/creator/instamodel/image/v1",
        {"face": "input_face"},
        _same("prompt", "negative_prompt", "width", "height") | _IMAGE,
    ),
    Operation.image_try_on: Wire(
        "/creator/tryon/image/v1",
        {"person": "person_image", "garment": "clothing_image"},
        {"gender": "gender", "category": "clothing_type"}
        | _same("width", "height", "use_segmentation", "tone_correction")
        | _same("seed", "output_format", "profile_id"),
    ),
    Operation.audio_clone_voice: Wire(
        "/identity/voice/clone/v1",
        {"reference_audio": "reference_voice_url"},
        _same("text", "max_new_tokens", "exaggeration")
        | {"language": "language_id", "watermark": "apply_watermark"},
    ),
}


# bindings ---------------------------------------------------------------------------------


def _sides_outside(params: Params, sides: range) -> str | None:
    for name in ("width", "height"):
        value = getattr(params, name, None)
        if value is not None and value not in sides:
            return name
    return None


def swap_face_refusal(params: Params) -> str | None:
    """A factor with ``upscale: false``, restoration with ``enhance_face: false``."""
    if not isinstance(params, SwapFace):
        return None
    if params.upscale is False and params.scale not in (None, 1):
        return "scale"
    if params.enhance_face is False and params.restore_weight not in (None, 0):
        return "restore_weight"
    return None


def size_refusal(params: Params) -> str | None:
    return _sides_outside(params, IMAGE_SIDES)


def try_on_refusal(params: Params) -> str | None:
    """Sizes outside 256–2048 (``gender`` and ``category``, required upstream, are the
    binding's ``required``)."""
    if not isinstance(params, TryOn):
        return None
    return _sides_outside(params, TRY_ON_SIDES)


def clone_voice_refusal(params: Params) -> str | None:
    if isinstance(params, CloneVoice) and (params.exaggeration or 0) > MAX_EXAGGERATION:
        return "exaggeration"
    return None


# answers ----------------------------------------------------------------------------------


def unreadable(what: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"{PROVIDER} answered with an unreadable body ({what})")


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise unreadable("not JSON") from exc
    if not isinstance(body, dict):
        raise unreadable("not a JSON object")
    return body


def _error_detail(response: httpx.Response) -> tuple[str, str | None]:
    """An HTTP error's text and, when its body names one, its ``failure_reason_code``."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase, None
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        code = detail.get("failure_reason_code")
        text = detail.get("error") or detail.get("message") or detail.get("detail") or detail
        return str(text), code if isinstance(code, str) else None
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{where}: {item.get('msg', item)}" if where else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts) or response.reason_phrase, None
    return str(detail) if detail else response.reason_phrase, None


def _retry_after(headers: httpx.Headers, now: float) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            return None


def http_failure(response: httpx.Response) -> Failed | None:
    """``None`` for a 2xx; a ``Failed`` from the table; raises for 5xx."""
    status = response.status_code
    if status < 300:
        return None
    if status >= 500:
        raise ProviderUnavailable(f"{PROVIDER} answered HTTP {status}")
    message, code = _error_detail(response)
    meaning = _meaning(f"HTTP {status}")
    if code is not None and isinstance(MEANINGS.get(code), Meaning):
        _, meaning = _failure_meaning(code, message)
    limited = meaning.code is ErrorCode.provider_rate_limited
    retry_after = _retry_after(response.headers, time.time()) if limited else None
    return Failed(
        code=meaning.code,
        message=f"{PROVIDER} HTTP {status}: {message}",
        provider_code=code or f"http_{status}",
        retryable=meaning.retryable,
        retry_after_s=retry_after,
    )


def job_failure(body: Mapping[str, Any], status: str) -> Failed:
    error = str(body.get("error") or f"job {status}")
    code = body.get("failure_reason_code")
    if status == "cancelled" and code is None:
        code = "CANCELLED"
    provider_code, meaning = _failure_meaning(code, error)
    return Failed(
        code=meaning.code,
        message=f"{PROVIDER} job {status}: {error}",
        provider_code=provider_code,
        retryable=meaning.retryable,
    )


def output_type(response: httpx.Response, hinted: object, kind: str) -> str:
    """The result's media type: declared, hinted by ``result_mime_type``, or sniffed."""
    declared = response.headers.get("content-type", "")
    found = media_type(response.content, kind, declared, hinted)
    if found is None:
        raise unreadable(f"result is {declared or 'untyped'}, not {kind}")
    return found


def credential_key(api_key: str | None) -> str:
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    return f"balance:{digest}"
