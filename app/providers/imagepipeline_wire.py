"""ImagePipeline on the wire: request shapes per operation, parameter checks, and the one
mapping table of its statuses and failure codes. The adapter (``imagepipeline.py``) records
how the document is read."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.operations import (
    CloneVoice,
    Operation,
    Params,
    SwapFace,
    TryOn,
)
from app.providers import _http
from app.providers._citations import (
    HTTP_400,
    HTTP_401,
    HTTP_403,
    HTTP_404,
    HTTP_413,
    HTTP_422,
    HTTP_429,
)
from app.providers._meaning import Meaning, unlisted
from app.providers.base import Call, Failed

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


Running = Literal["running"]
Completed = Literal["completed"]

STATUSES: Final[Mapping[str, Running | Completed | Meaning]] = {
    "queued": "running",
    "pending": "running",
    "processing": "running",
    "completed": "completed",
    "failed": unlisted(retryable=True),
    "cancelled": unlisted(),
}
"""Job statuses. The document names only ``completed`` (line 81) and points to a *Jobs* page
it does not include (line 4): the others are read as their words say, and a failure's
``failure_reason_code`` is kept as the failure's ``provider_code``."""

HTTP_ERRORS: Final[Mapping[int, Meaning]] = {
    400: Meaning(ErrorCode.invalid_parameter, False, HTTP_400),
    401: Meaning(ErrorCode.provider_auth_failed, True, HTTP_401),
    403: Meaning(ErrorCode.provider_auth_failed, True, HTTP_403),
    404: Meaning(ErrorCode.upstream_failed, True, HTTP_404),
    413: Meaning(ErrorCode.media_too_large, False, HTTP_413),
    422: Meaning(ErrorCode.invalid_parameter, False, HTTP_422),
    429: Meaning(ErrorCode.provider_rate_limited, True, HTTP_429),
}
"""HTTP answers by the HTTP standard (the document lists none); 5xx raises; any other 4xx
(402 among them) is ``upstream_failed`` with its status kept."""
UNLISTED: Final = unlisted()


def _meaning(status: int) -> Meaning:
    return HTTP_ERRORS.get(status, UNLISTED)


def status_meaning(status: object) -> Running | Completed | Meaning | None:
    """A job status's entry (statuses are the table's lower-case keys)."""
    if not isinstance(status, str):
        return None
    return STATUSES.get(status)


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
    return _http.unreadable(PROVIDER, what)


def json_object(response: httpx.Response) -> dict[str, Any]:
    return _http.json_object(PROVIDER, response)


def _error_detail(response: httpx.Response) -> tuple[str, str | None]:
    """An HTTP error's text and, when its body names one, its ``failure_reason_code``."""
    body = _http.error_body(response)
    detail = body.json.get("detail", body.json) if isinstance(body.json, dict) else body.json
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
        return "; ".join(parts) or body.text, None
    return str(detail) if detail else body.text, None


def http_failure(response: httpx.Response) -> Failed | None:
    """``None`` for a 2xx; a ``Failed`` from the table; raises for 5xx. A
    ``failure_reason_code`` in the body is kept as the failure's ``provider_code``."""
    status = response.status_code
    if status < 300:
        return None
    if status >= 500:
        raise ProviderUnavailable(f"{PROVIDER} answered HTTP {status}")
    message, code = _error_detail(response)
    meaning = _meaning(status)
    limited = meaning.code is ErrorCode.provider_rate_limited
    wait = _http.retry_after(response.headers) if limited else None
    return meaning.failed(f"{PROVIDER} HTTP {status}: {message}", code or f"http_{status}", wait)


def job_failure(body: Mapping[str, Any], status: str) -> Failed:
    """A ``failed`` / ``cancelled`` job: the status's meaning, the upstream's code kept."""
    error = str(body.get("error") or f"job {status}")
    code = body.get("failure_reason_code")
    meaning = STATUSES.get(status)
    assert isinstance(meaning, Meaning)
    provider_code = code if isinstance(code, str) and code else status
    return meaning.failed(f"{PROVIDER} job {status}: {error}", provider_code)


def credential_key(api_key: str | None) -> str:
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    return f"balance:{digest}"
