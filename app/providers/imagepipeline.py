"""ImagePipeline adapter (``providers/imagepipeline.txt``): asynchronous jobs on public URLs.

==========================  ===========================================================
image.swap_face             ``POST /identity/faceswap/image/v1`` (``source``, ``target``)
image.lock_identity         ``POST /identity/lock/image/v1`` (``face`` → ``input_image``)
image.replace_identity      ``POST /identity/replace/image/v1`` (``image`` → ``input_image``)
image.instamodel            ``POST /creator/instamodel/image/v1`` (``face`` → ``input_face``)
image.try_on                ``POST /creator/tryon/image/v1`` (``person_image``,
                            ``clothing_image``, ``gender``, ``clothing_type``)
audio.clone_voice           ``POST /identity/voice/clone/v1`` (``reference_audio`` →
                            ``reference_voice_url``)
every job                   ``GET <endpoint>/status/{job_id}`` until a terminal status, then
                            ``result_url`` is downloaded (no key: a pre-signed link)
==========================  ===========================================================

Every request carries ``X-API-Key``; bodies are flat JSON and every input is a public URL
(``call.media.public_url``). ``callback_url`` is sent when the gateway has one.

Readings of what the document leaves open (the sandbox emulator keeps the same ones):

- **Jobs.** The document sends readers to its *Jobs* and *Errors* pages for the lifecycle.
  Read with them: a submission answers ``{"job_id", "status": "queued", …}``; statuses are
  ``queued``, ``pending``, ``processing`` (running; ``progress`` is 0–100), ``completed``
  (``result_url``, ``result_mime_type``, ``processing_time_seconds``,
  ``balance_remaining_usd``), ``failed`` (``error``, ``failure_reason_code``, ``retryable``)
  and ``cancelled``. The poll path is the submission path plus ``/status/{job_id}``.
- **Errors** live in one table (``MEANINGS``) with the statuses. Validation is a synchronous
  422 (``{"detail": [{"loc", "msg", "type"}]}``); runtime problems end the job ``failed``
  with a ``failure_reason_code``. The document's ``INPUT_INVALID`` covers both "bad input"
  and "content-policy violation": its ``error`` text tells them apart (``content policy`` →
  ``content_blocked``, ``no face`` → ``no_face_detected``, else ``invalid_parameter``).
  ``INSUFFICIENT_CREDITS`` / ``CREDIT_CHARGE_FAILED`` are this account's trouble, so
  ``provider_unavailable`` (another provider may serve); a ``cancelled`` job (nobody here
  cancels upstream) is ``upstream_failed``, not retried. Conventional HTTP answers are read
  the same way (401/403 auth, 402 credits, 429 with ``Retry-After``, 400/422 the request),
  a ``failure_reason_code`` in an HTTP error body taking precedence; 5xx raises.
- **Balance.** Every answer carrying ``balance_remaining_usd`` is remembered in shared state
  per credential (keyed by a hash of the key); :meth:`balance` reports the first one's.
- **Parameters.** ``upscale`` is a factor (1.0–4.0, default 1.5) upstream: canonical
  ``upscale: false`` sends 1.0, ``scale`` sends the factor (``scale`` with ``upscale: false``
  is refused). ``enhance_face: false`` sends ``restore_weight`` 0.0 (a positive
  ``restore_weight`` with it is refused). Canonical ``gender`` male/female is man/woman;
  ``category`` becomes a ``clothing_type`` phrase from ``CLOTHING_TYPES``; both are required
  upstream, so a try-on without them is refused. ``steps`` is ``num_inference_steps``;
  ``language`` is ``language_id`` (primary subtag: ``en-US`` → ``en``); ``watermark`` is
  ``apply_watermark``; ``exaggeration`` is 0.0–1.0 upstream. Sizes: 2048 px at most (try-on
  256–2048). ``server_id`` (Enterprise pod pin) is not offered. Replace-identity describes the
  new person by ``prompt`` (and ``profile_id``): it takes no face picture.
- **Prices.** The document lists none. Each binding is priced at $0.001 per second of the
  document's example ``processing_time_seconds`` (rounded up; 1 credit = $0.001): faceswap 23,
  lock 39, replace 33, instamodel 30, try-on 44, voice clone 7.
- **Limits.** The document names rate and concurrency failures but gives no numbers: none.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Final, Literal
from urllib.parse import quote

import httpx

from app.errors import ErrorCode, ProviderUnavailable
from app.jobs.operations import (
    CloneVoice,
    Operation,
    Params,
    SwapFace,
    TryOn,
)
from app.media_types import media_type
from app.providers._http import upstream_errors
from app.providers.base import (
    Adapter,
    Balance,
    Binding,
    Call,
    Failed,
    OutputFile,
    PollResult,
    Progress,
    SubmitResult,
    Submitted,
    Succeeded,
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


def _status_meaning(status: object) -> Running | Completed | Meaning | None:
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


def _swap_face_refusal(params: Params) -> str | None:
    """A factor with ``upscale: false``, restoration with ``enhance_face: false``."""
    if not isinstance(params, SwapFace):
        return None
    if params.upscale is False and params.scale not in (None, 1):
        return "scale"
    if params.enhance_face is False and params.restore_weight not in (None, 0):
        return "restore_weight"
    return None


def _size_refusal(params: Params) -> str | None:
    return _sides_outside(params, IMAGE_SIDES)


def _try_on_refusal(params: Params) -> str | None:
    """Sizes outside 256–2048; ``gender`` and ``category`` are required upstream."""
    if not isinstance(params, TryOn):
        return None
    if params.gender is None:
        return "gender"
    if params.category is None:
        return "category"
    return _sides_outside(params, TRY_ON_SIDES)


def _clone_voice_refusal(params: Params) -> str | None:
    if isinstance(params, CloneVoice) and (params.exaggeration or 0) > MAX_EXAGGERATION:
        return "exaggeration"
    return None


# answers ----------------------------------------------------------------------------------


def _unreadable(what: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"{PROVIDER} answered with an unreadable body ({what})")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise _unreadable("not JSON") from exc
    if not isinstance(body, dict):
        raise _unreadable("not a JSON object")
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


def _http_failure(response: httpx.Response) -> Failed | None:
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


def _job_failure(body: Mapping[str, Any], status: str) -> Failed:
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


def _content_type(response: httpx.Response, hinted: object, kind: str) -> str:
    """The result's media type: declared, hinted by ``result_mime_type``, or sniffed."""
    declared = response.headers.get("content-type", "")
    found = media_type(response.content, kind, declared, hinted)
    if found is None:
        raise _unreadable(f"result is {declared or 'untyped'}, not {kind}")
    return found


def _credential_key(api_key: str | None) -> str:
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    return f"balance:{digest}"


class ImagePipelineAdapter(Adapter):
    name: ClassVar[str] = PROVIDER
    bindings: ClassVar[Mapping[Operation, Binding]] = {
        Operation.image_swap_face: Binding(
            WIRES[Operation.image_swap_face].parameters, price=23, check=_swap_face_refusal
        ),
        Operation.image_lock_identity: Binding(
            WIRES[Operation.image_lock_identity].parameters, price=39, check=_size_refusal
        ),
        Operation.image_replace_identity: Binding(
            WIRES[Operation.image_replace_identity].parameters, price=33
        ),
        Operation.image_instamodel: Binding(
            WIRES[Operation.image_instamodel].parameters, price=30, check=_size_refusal
        ),
        Operation.image_try_on: Binding(
            WIRES[Operation.image_try_on].parameters,
            values={"category": frozenset(CLOTHING_TYPES), "gender": frozenset(GENDERS)},
            price=44,
            check=_try_on_refusal,
        ),
        Operation.audio_clone_voice: Binding(
            WIRES[Operation.audio_clone_voice].parameters, price=7, check=_clone_voice_refusal
        ),
    }
    """Prices: $0.001 per second of each endpoint's example ``processing_time_seconds``."""

    def _headers(self, call: Call) -> dict[str, str]:
        key = self.credential(call).api_key
        return {"X-API-Key": key} if key else {}

    async def submit(self, call: Call) -> SubmitResult:
        wire = WIRES.get(call.operation)
        if wire is None:
            message = f"{PROVIDER} does not serve {call.operation.value}"
            return Failed(ErrorCode.unsupported_operation, message)
        body = wire.body(call)
        if call.callback_url:
            body["callback_url"] = call.callback_url
        url = f"{self.base_url}{wire.endpoint}"
        with upstream_errors(PROVIDER):
            response = await self.client.post(
                url, json=body, headers=self._headers(call), timeout=self.config.timeout_s
            )
        if (failed := _http_failure(response)) is not None:
            return failed
        answer = _json_object(response)
        await self._remember_balance(call, answer)
        job_id = answer.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise _unreadable("no job_id")
        status = answer.get("status")
        if isinstance(_status_meaning(status), Meaning):
            return _job_failure(answer, str(status))
        return Submitted(job_id, poll_after_s=self.config.poll_interval_s)

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        wire = WIRES.get(call.operation)
        if wire is None:
            message = f"{PROVIDER} does not serve {call.operation.value}"
            return Failed(ErrorCode.unsupported_operation, message)
        url = f"{self.base_url}{wire.endpoint}/status/{quote(provider_job_id, safe='')}"
        with upstream_errors(PROVIDER):
            response = await self.client.get(
                url, headers=self._headers(call), timeout=self.config.timeout_s
            )
        if (failed := _http_failure(response)) is not None:
            return failed
        body = _json_object(response)
        await self._remember_balance(call, body)
        status = body.get("status")
        meaning = _status_meaning(status)
        if meaning is None:
            raise _unreadable(f"unknown status {status!r}")
        if meaning == "running":
            progress = body.get("progress")
            fraction = None
            if isinstance(progress, int | float) and not isinstance(progress, bool):
                fraction = min(1.0, max(0.0, progress / 100))
            return Progress(fraction, poll_after_s=self.config.poll_interval_s)
        if isinstance(meaning, Meaning):
            return _job_failure(body, str(status))
        kind = "audio" if call.operation is Operation.audio_clone_voice else "image"
        return await self._download(body.get("result_url"), body.get("result_mime_type"), kind)

    async def _download(self, result_url: object, hinted: object, kind: str) -> Succeeded:
        if not isinstance(result_url, str) or not result_url.startswith(("http://", "https://")):
            raise _unreadable("completed without a result_url")
        with upstream_errors(PROVIDER):
            response = await self.client.get(result_url, timeout=self.config.timeout_s)
        if response.status_code != 200 or not response.content:
            raise ProviderUnavailable(
                f"{PROVIDER} result download answered HTTP {response.status_code}"
            )
        content_type = _content_type(response, hinted, kind)
        return Succeeded(files=[OutputFile(response.content, content_type)])

    # balance ----------------------------------------------------------------------------------

    async def _remember_balance(self, call: Call, body: Mapping[str, Any]) -> None:
        value = body.get("balance_remaining_usd")
        if isinstance(value, int | float) and not isinstance(value, bool):
            key = _credential_key(self.credential(call).api_key)
            await self.state.put(key, repr(float(value)), BALANCE_TTL_S)

    async def balance(self) -> Balance | None:
        pool = self.config.credentials
        stored = await self.state.get(_credential_key(pool[0].api_key if pool else None))
        if stored is None:
            return None
        try:
            return Balance(float(stored), "usd")
        except ValueError:
            return None
