"""Image Pig adapter: synchronous JSON calls answering a base64 image.

Operations and endpoints (``POST`` under ``https://api.imagepig.com``, header ``Api-Key``):

================================  =====================================================
image.generate                    ``/`` (model ``sd1.5``, the default), ``/xl`` (``sdxl``),
                                  ``/flux`` (``flux-schnell``; ``aspect`` → ``proportion``)
image.remove_background           ``/cutout`` (always a PNG with transparency)
image.upscale                     ``/upscale`` (``scale`` → ``upscaling_factor`` 2, 4 or 8)
image.swap_face                   ``/faceswap`` (``source`` / ``target``)
image.outpaint                    ``/outpaint`` (``top``/``right``/``bottom``/``left`` ≤ 1024)
================================  =====================================================

Media: a ``url`` reference is sent as ``*_url``; a ``file_id`` reference is read and sent as
base64 ``*_data`` (the document calls it faster, as nothing has to be downloaded).

Readings of what the document leaves open (the sandbox emulator keeps the same ones):

- Prompts go out as ``prompt`` (the document's examples), not its alias ``positive_prompt``.
- Output format: ``format`` is ``JPEG`` or ``PNG``; webp is refused before anything is sent.
  ``/cutout`` takes no ``format`` and always answers a PNG.
- FLUX has "no negative_prompt", so ``negative_prompt`` is refused with ``flux-schnell``;
  ``aspect`` exists only as FLUX's ``proportion`` and is refused with the other models.
  Output sizes are fixed per model, so ``width``/``height`` are not offered.
- Outpaint sides are sent only when non-zero (the document's default is 0).
- ``storage_days`` is never sent: the gateway keeps artifacts itself and wants the bytes.
- Errors: the document only names 422 (no face found). Everything else is read as
  conventional HTTP: 400 a request it refuses (bad attributes, undecodable image), 401 a
  missing or unknown ``Api-Key``, 402 a plan with no API calls left, 403 a request refused
  by content moderation (the Stability AI convention for Stable Diffusion services),
  429 too many requests with ``Retry-After``, 5xx the service failing. 402 and 5xx say
  nothing about the request, so they are raised as :class:`ProviderUnavailable` (the
  gateway falls back to another provider); the others come back as ``Failed``.
- Price: the document counts each ``/flux`` image as two standard API calls. A binding has
  one price per operation, so image.generate is priced at the flux cost (the upper bound);
  every other operation is one call.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel

from app.errors import ErrorCode, ProviderUnavailable
from app.jobs.media import MediaInput
from app.jobs.models import utcnow
from app.jobs.operations import (
    GenerateImage,
    Operation,
    Outpaint,
    Params,
    RemoveBackground,
    SwapFace,
    Upscale,
)
from app.providers._http import upstream_errors
from app.providers.base import (
    Adapter,
    Binding,
    Call,
    Failed,
    OutputFile,
    SubmitResult,
    Succeeded,
)

PROVIDER = "imagepig"

STANDARD_CALL_PRICE = 1
"""Gateway credits for one standard Image Pig API call."""
FLUX_CALLS = 2
"""The document: "each image generated counts as two standard API calls"."""

MAX_SIDE_EXTENSION = 1024
"""Outpaint: at most this many pixels on each side."""
_SIDES = ("top", "right", "bottom", "left")


@dataclass(frozen=True)
class _Outcome:
    code: ErrorCode
    retryable: bool


ERRORS: dict[int, _Outcome] = {
    400: _Outcome(ErrorCode.invalid_parameter, retryable=False),
    401: _Outcome(ErrorCode.provider_auth_failed, retryable=True),
    402: _Outcome(ErrorCode.provider_unavailable, retryable=True),
    403: _Outcome(ErrorCode.content_blocked, retryable=False),
    422: _Outcome(ErrorCode.no_face_detected, retryable=False),
    429: _Outcome(ErrorCode.provider_rate_limited, retryable=True),
    500: _Outcome(ErrorCode.provider_unavailable, retryable=True),
    502: _Outcome(ErrorCode.provider_unavailable, retryable=True),
    503: _Outcome(ErrorCode.provider_unavailable, retryable=True),
    504: _Outcome(ErrorCode.provider_unavailable, retryable=True),
}
"""Upstream HTTP status → canonical outcome: the one place Image Pig errors are read."""

_OTHER_SERVER_ERROR = _Outcome(ErrorCode.provider_unavailable, retryable=True)
_OTHER_CLIENT_ERROR = _Outcome(ErrorCode.upstream_failed, retryable=False)

_ENDPOINTS: dict[str | None, str] = {
    None: "/",
    "sd1.5": "/",
    "sdxl": "/xl",
    "flux-schnell": "/flux",
}
"""image.generate: canonical ``model`` → endpoint."""
_FLUX_ONLY = "aspect"
_NOT_FLUX = "negative_prompt"

_FORMATS: dict[str, str] = {"png": "PNG", "jpeg": "JPEG"}
_FORMAT_VALUES: frozenset[object] = frozenset(_FORMATS)

_Body = dict[str, object]
"""A JSON request body, exactly as it goes on the wire."""


@dataclass(frozen=True)
class _Request:
    endpoint: str
    body: _Body


class _Answer(BaseModel):
    """A success body (``image_url`` is never asked for, so ``image_data`` is required)."""

    image_data: str
    mime_type: str
    seed: int | None = None


class _ErrorAnswer(BaseModel):
    error: str


def _check_generate(params: Params) -> str | None:
    assert isinstance(params, GenerateImage)
    given = params.given()
    is_flux = params.model == "flux-schnell"
    if is_flux and _NOT_FLUX in given:
        return _NOT_FLUX
    if not is_flux and _FLUX_ONLY in given:
        return _FLUX_ONLY
    return None


def _check_outpaint(params: Params) -> str | None:
    assert isinstance(params, Outpaint)
    for side in _SIDES:
        if getattr(params, side) > MAX_SIDE_EXTENSION:
            return side
    return None


BINDINGS: dict[Operation, Binding] = {
    Operation.image_generate: Binding(
        parameters=frozenset(
            {"prompt", "negative_prompt", "model", "aspect", "seed", "output_format"}
        ),
        values={"output_format": _FORMAT_VALUES},
        price=FLUX_CALLS * STANDARD_CALL_PRICE,
        check=_check_generate,
    ),
    Operation.image_remove_background: Binding(
        parameters=frozenset({"image", "seed"}),
        price=STANDARD_CALL_PRICE,
    ),
    Operation.image_upscale: Binding(
        parameters=frozenset({"image", "scale", "seed", "output_format"}),
        values={"scale": frozenset({2, 4, 8}), "output_format": _FORMAT_VALUES},
        price=STANDARD_CALL_PRICE,
    ),
    Operation.image_swap_face: Binding(
        parameters=frozenset({"source", "target", "output_format"}),
        values={"output_format": _FORMAT_VALUES},
        price=STANDARD_CALL_PRICE,
    ),
    Operation.image_outpaint: Binding(
        parameters=frozenset(
            {
                "image",
                "prompt",
                "negative_prompt",
                "top",
                "right",
                "bottom",
                "left",
                "seed",
                "output_format",
            }
        ),
        values={"output_format": _FORMAT_VALUES},
        price=STANDARD_CALL_PRICE,
        check=_check_outpaint,
    ),
}


def _optional(**fields: object) -> _Body:
    """The attributes that have a value (Image Pig's defaults apply to the others)."""
    return {name: value for name, value in fields.items() if value is not None}


def _format(output_format: Literal["png", "jpeg", "webp"] | None) -> str | None:
    return _FORMATS[output_format] if output_format else None


async def _image(call: Call, prefix: str, ref: MediaInput) -> _Body:
    """``{prefix}_url`` for a URL reference, else the bytes as base64 ``{prefix}_data``."""
    if ref.url is not None:
        return {f"{prefix}_url": call.media.public_url(ref)}
    media = await call.media.read(ref)
    return {f"{prefix}_data": base64.b64encode(media.content).decode("ascii")}


async def _generate(call: Call) -> _Request:
    p = call.params
    assert isinstance(p, GenerateImage)
    body = _optional(
        prompt=p.prompt,
        negative_prompt=p.negative_prompt,
        proportion=p.aspect,
        format=_format(p.output_format),
        seed=p.seed,
    )
    return _Request(_ENDPOINTS[p.model], body)


async def _cutout(call: Call) -> _Request:
    p = call.params
    assert isinstance(p, RemoveBackground)
    body = await _image(call, "image", p.image) | _optional(seed=p.seed)
    return _Request("/cutout", body)


async def _upscale(call: Call) -> _Request:
    p = call.params
    assert isinstance(p, Upscale)
    body = await _image(call, "image", p.image) | _optional(
        upscaling_factor=p.scale, format=_format(p.output_format), seed=p.seed
    )
    return _Request("/upscale", body)


async def _faceswap(call: Call) -> _Request:
    p = call.params
    assert isinstance(p, SwapFace)
    source = await _image(call, "source_image", p.source)
    target = await _image(call, "target_image", p.target)
    return _Request("/faceswap", source | target | _optional(format=_format(p.output_format)))


async def _outpaint(call: Call) -> _Request:
    p = call.params
    assert isinstance(p, Outpaint)
    sides = {side: getattr(p, side) for side in _SIDES}
    body = await _image(call, "image", p.image) | _optional(
        prompt=p.prompt,
        negative_prompt=p.negative_prompt,
        format=_format(p.output_format),
        seed=p.seed,
    )
    return _Request("/outpaint", body | {side: n for side, n in sides.items() if n})


_BUILDERS: dict[Operation, Callable[[Call], Awaitable[_Request]]] = {
    Operation.image_generate: _generate,
    Operation.image_remove_background: _cutout,
    Operation.image_upscale: _upscale,
    Operation.image_swap_face: _faceswap,
    Operation.image_outpaint: _outpaint,
}


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), if present and readable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        return _ErrorAnswer.model_validate_json(response.content).error
    except ValueError:
        return f"HTTP {response.status_code}"


def _failure(response: httpx.Response) -> Failed:
    """Translate a non-2xx answer through :data:`ERRORS`; raise when the service is at fault."""
    status = response.status_code
    outcome = ERRORS.get(status) or (_OTHER_SERVER_ERROR if status >= 500 else _OTHER_CLIENT_ERROR)
    message = _error_message(response)
    if outcome.code is ErrorCode.provider_unavailable:
        raise ProviderUnavailable(f"{PROVIDER} answered {status}: {message}")
    return Failed(
        code=outcome.code,
        message=message,
        provider_code=str(status),
        retryable=outcome.retryable,
        retry_after_s=_retry_after(response.headers.get("Retry-After")),
    )


def _success(response: httpx.Response) -> Succeeded:
    answer = _Answer.model_validate_json(response.content)
    content = base64.b64decode(answer.image_data, validate=True)
    data: dict[str, object] = {} if answer.seed is None else {"seed": answer.seed}
    return Succeeded(files=[OutputFile(content, answer.mime_type)], data=data)


class ImagePigAdapter(Adapter):
    name: ClassVar[str] = PROVIDER
    bindings: ClassVar[dict[Operation, Binding]] = BINDINGS

    async def submit(self, call: Call) -> SubmitResult:
        request = await _BUILDERS[call.operation](call)
        key = self.credential(call).api_key
        headers = {"Api-Key": key} if key else {}
        with upstream_errors(PROVIDER):
            response = await self.client.post(
                f"{self.base_url}{request.endpoint}",
                json=request.body,
                headers=headers,
                timeout=self.config.timeout_s,
            )
            if response.is_success:
                return _success(response)
        return _failure(response)
