"""Image Pig adapter: synchronous JSON calls answering a base64 image (or a stored image's URL).

Operations and endpoints (``POST`` under ``https://api.imagepig.com``, header ``Api-Key``):

================================  =====================================================
image.generate                    ``/`` (model ``sd1.5``), ``/xl`` (``sdxl``),
                                  ``/flux`` (``flux-schnell``; ``aspect`` → ``proportion``)
image.remove_background           ``/cutout`` (always a PNG with transparency)
image.upscale                     ``/upscale`` (``scale`` → ``upscaling_factor`` 2, 4 or 8)
image.swap_face                   ``/faceswap`` (``source`` / ``target``)
image.outpaint                    ``/outpaint`` (``top``/``right``/``bottom``/``left`` ≤ 1024)
================================  =====================================================

Canonical parameters → attributes: ``prompt`` → ``prompt``, ``negative_prompt``,
``language`` → ``language``, ``seed``, ``output_format`` (``png``/``jpeg``) → ``format``
(``PNG``/``JPEG``), ``aspect`` → ``proportion``, ``scale`` → ``upscaling_factor``. Media: a
``url`` reference is sent as ``*_url``; a ``file_id`` reference is read and sent as base64
``*_data`` (the document calls it faster, as nothing has to be downloaded).

Readings of what the document leaves open (the sandbox emulator keeps the same ones):

- **Model.** ``model`` picks the endpoint (``sd1.5`` → ``/``, ``sdxl`` → ``/xl``,
  ``flux-schnell`` → ``/flux``: the document's "FLUX.1 [schnell]"). Without ``model`` the
  ``quality`` hint picks it, by the document's speed and size notes: ``fast`` → ``sd1.5``
  (512 px, "one or two seconds"), ``standard`` → ``sdxl`` (1024 px, "three or four
  seconds"), ``high`` → ``flux-schnell`` ("state-of-the-art", over five seconds, two calls).
  With neither, the default endpoint ``/`` (``sd1.5``). ``model`` wins over ``quality``.
- **Per-model attributes.** FLUX has "no negative_prompt", so ``negative_prompt`` is refused
  when the model resolves to ``flux-schnell``; ``aspect`` exists only as FLUX's
  ``proportion`` (the five canonical aspects are exactly the document's proportions) and is
  refused with the other models. Output sizes are fixed per model, so ``width``/``height``
  are not offered; nor is ``style_id``.
- **Language.** ``language`` takes the document's 29 ISO 639-1 codes. ``en`` is accepted and
  not sent: the attribute exists for prompts "in a different language than English".
- Prompts go out as ``prompt`` (the document's examples), not its alias ``positive_prompt``.
- **Output format.** ``format`` is ``JPEG`` or ``PNG``; webp is refused before anything is
  sent. ``/cutout`` takes no ``format`` and always answers a PNG.
- **Face swap** always enhances the result with GFPGAN, so ``enhance_face`` is honoured when
  true (nothing is sent) and refused when false. ``/faceswap`` takes no ``seed``.
- Outpaint sides are sent only when non-zero (the document's default is 0), each ≤ 1024.
- **Stored images.** ``storage_days`` is never sent: the gateway keeps artifacts itself and
  wants the bytes. An answer carrying ``image_url`` instead of ``image_data`` is still read:
  the file is downloaded (without the ``Api-Key``; it may live on another host). A ``404``
  there is retried a few times, as the official ``imagepig`` client does (the upload may
  lag the answer); any other failure is the service failing.
- **Errors.** The document names only ``422`` (no face found) and the ``{"error"}`` body.
  The statuses the HTTP standard defines are read by it: 400 a request it refuses, 401 a
  missing or unknown ``Api-Key``, 429 too many requests with ``Retry-After``, 5xx the service
  failing (raised as :class:`ProviderUnavailable`: the gateway falls back to another
  provider). A 422 whose body is FastAPI's validation list (``{"detail": [{"msg"}]}``, which
  the official client also reads) is a refused request, not a missing face. Any other status
  (402, 403…) is ``upstream_failed`` with the status kept as ``provider_code``: the document
  does not say what it means (in particular, no content moderation is documented).
- **Limits.** The document states no request rate or concurrency limit, so ``limits`` is empty.
- **Price.** The document gives no money prices; one standard API call is one gateway credit.
  It counts each ``/flux`` image as two calls. A binding has one price per operation, so
  image.generate is priced at the flux cost (the upper bound); every other operation is one.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, model_validator

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.media import MediaInput
from app.domain.operations import (
    GenerateImage,
    Operation,
    Outpaint,
    Params,
    RemoveBackground,
    SwapFace,
    Upscale,
)
from app.providers import _http
from app.providers._citations import HTTP_400, HTTP_401, HTTP_422, HTTP_429, document
from app.providers._http import upstream_errors
from app.providers._meaning import SERVER_ERROR, Meaning, unlisted
from app.providers.base import (
    Adapter,
    Binding,
    Call,
    Failed,
    OutputFile,
    SubmitResult,
    Succeeded,
    UpstreamLimit,
)

PROVIDER = "imagepig"

STANDARD_CALL_PRICE = 1
"""Gateway credits for one standard Image Pig API call."""
FLUX_CALLS = 2
"""The document: "each image generated counts as two standard API calls"."""

MAX_SIDE_EXTENSION = 1024
"""Outpaint: at most this many pixels on each side."""
_SIDES = ("top", "right", "bottom", "left")

UPSCALING_FACTORS: frozenset[object] = frozenset({2, 4, 8})

LANGUAGES: frozenset[str] = frozenset(
    "ar bg cs da de el es et fi fr hu id it ja ko lt lv nb nl pl pt ro ru sk sl sv tr uk zh".split()
)
"""The document's supported prompt languages (ISO 639-1)."""
ENGLISH = "en"
"""The models' own language: accepted, and not sent."""
_LANGUAGE_VALUES: frozenset[object] = frozenset(LANGUAGES | {ENGLISH})

DOWNLOAD_ATTEMPTS = 5
"""Tries of a stored image's URL while it answers 404 (the upload may lag the answer)."""
DOWNLOAD_PAUSE_S = 1.0


class ErrorShape(StrEnum):
    """The shape of an error answer's body, as far as the mapping needs to know."""

    error = "error"
    """The document's ``{"error", "started_at", "completed_at"}``."""
    validation = "validation"
    """FastAPI's ``{"detail": [{"msg": …}, …]}``: the request's attributes were refused."""
    other = "other"
    """No body, not JSON, or neither of the above."""


doc = document(PROVIDER)

ERRORS: dict[tuple[int, ErrorShape | None], Meaning] = {
    (400, None): Meaning(ErrorCode.invalid_parameter, False, HTTP_400),
    (401, None): Meaning(ErrorCode.provider_auth_failed, True, HTTP_401),
    (422, None): Meaning(ErrorCode.no_face_detected, False, doc(829, "responds with HTTP status")),
    (422, ErrorShape.validation): Meaning(ErrorCode.invalid_parameter, False, HTTP_422),
    (429, None): Meaning(ErrorCode.provider_rate_limited, True, HTTP_429),
}
"""Upstream (HTTP status, body kind) → canonical meaning: the one place Image Pig errors are
read. ``None`` matches any body; a row naming the body kind takes precedence. 5xx is
:data:`SERVER_ERROR` (raised); any other 4xx (402, 403…) is ``upstream_failed``, its status
kept: the document does not say what they mean."""

_OTHER_CLIENT_ERROR = unlisted()

Model = Literal["sd1.5", "sdxl", "flux-schnell"]
FLUX: Model = "flux-schnell"
DEFAULT_MODEL: Model = "sd1.5"
QUALITY_MODELS: dict[str, Model] = {"fast": "sd1.5", "standard": "sdxl", "high": FLUX}
"""image.generate: the ``quality`` hint → model, when ``model`` is not given."""
_ENDPOINTS: dict[Model, str] = {"sd1.5": "/", "sdxl": "/xl", FLUX: "/flux"}
"""image.generate: model → endpoint."""
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
    """A success body: the image inline (``image_data``) or stored (``image_url``)."""

    image_data: str | None = None
    image_url: str | None = None
    mime_type: str
    seed: int | None = None

    @model_validator(mode="after")
    def _has_an_image(self) -> _Answer:
        if self.image_data is None and self.image_url is None:
            raise ValueError("neither image_data nor image_url")
        return self


class _ErrorAnswer(BaseModel):
    error: str


class _ValidationItem(BaseModel):
    msg: str


class _ValidationAnswer(BaseModel):
    detail: list[_ValidationItem]


def model_of(params: GenerateImage) -> Model:
    """The model a generation runs on: ``model``, else the ``quality`` hint, else ``sd1.5``."""
    if params.model is not None:
        return params.model
    if params.quality is not None:
        return QUALITY_MODELS[params.quality]
    return DEFAULT_MODEL


def _check_generate(params: Params) -> str | None:
    assert isinstance(params, GenerateImage)
    given = params.given()
    is_flux = model_of(params) == FLUX
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
            {
                "prompt",
                "negative_prompt",
                "model",
                "quality",
                "aspect",
                "seed",
                "output_format",
                "language",
            }
        ),
        values={"output_format": _FORMAT_VALUES, "language": _LANGUAGE_VALUES},
        price=FLUX_CALLS * STANDARD_CALL_PRICE,
        check=_check_generate,
    ),
    Operation.image_remove_background: Binding(
        parameters=frozenset({"image", "seed"}),
        price=STANDARD_CALL_PRICE,
    ),
    Operation.image_upscale: Binding(
        parameters=frozenset({"image", "scale", "seed", "output_format"}),
        values={"scale": UPSCALING_FACTORS, "output_format": _FORMAT_VALUES},
        price=STANDARD_CALL_PRICE,
    ),
    Operation.image_swap_face: Binding(
        parameters=frozenset({"source", "target", "enhance_face", "output_format"}),
        values={"enhance_face": frozenset({True}), "output_format": _FORMAT_VALUES},
        price=STANDARD_CALL_PRICE,
    ),
    Operation.image_outpaint: Binding(
        parameters=frozenset(
            {
                "image",
                "prompt",
                "negative_prompt",
                "language",
                "top",
                "right",
                "bottom",
                "left",
                "seed",
                "output_format",
            }
        ),
        values={"output_format": _FORMAT_VALUES, "language": _LANGUAGE_VALUES},
        price=STANDARD_CALL_PRICE,
        check=_check_outpaint,
    ),
}


def _optional(**fields: object) -> _Body:
    """The attributes that have a value (Image Pig's defaults apply to the others)."""
    return {name: value for name, value in fields.items() if value is not None}


def _format(output_format: Literal["png", "jpeg", "webp"] | None) -> str | None:
    return _FORMATS[output_format] if output_format else None


def _language(language: str | None) -> str | None:
    return None if language == ENGLISH else language


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
        language=_language(p.language),
        proportion=p.aspect,
        format=_format(p.output_format),
        seed=p.seed,
    )
    return _Request(_ENDPOINTS[model_of(p)], body)


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
        language=_language(p.language),
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


def _error_shape(response: httpx.Response) -> tuple[ErrorShape, str]:
    """The kind of an error body and its message."""
    try:
        return ErrorShape.error, _ErrorAnswer.model_validate_json(response.content).error
    except ValueError:
        pass
    try:
        detail = _ValidationAnswer.model_validate_json(response.content).detail
    except ValueError:
        return ErrorShape.other, f"HTTP {response.status_code}"
    return ErrorShape.validation, "; ".join(item.msg for item in detail) or "invalid request"


def _failure(response: httpx.Response) -> Failed:
    """Translate a non-2xx answer through :data:`ERRORS`; raise when the service is at fault."""
    status = response.status_code
    kind, message = _error_shape(response)
    meaning = (
        ERRORS.get((status, kind))
        or ERRORS.get((status, None))
        or (SERVER_ERROR if status >= 500 else _OTHER_CLIENT_ERROR)
    )
    if meaning.raised:
        raise ProviderUnavailable(f"{PROVIDER} answered {status}: {message}")
    return meaning.failed(message, str(status), _http.retry_after(response.headers))


class ImagePigAdapter(Adapter):
    name: ClassVar[str] = PROVIDER
    bindings: ClassVar[dict[Operation, Binding]] = BINDINGS
    limits: ClassVar[dict[str, UpstreamLimit]] = {}

    def reads(self, operation: Operation, params: Params) -> list[MediaInput]:
        """URL inputs go to Image Pig as ``*_url``; only uploaded files are read."""
        return [ref for ref in params.media().values() if ref.url is None]

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
            if not response.is_success:
                return _failure(response)
            answer = _Answer.model_validate_json(response.content)
            if answer.image_data is not None:
                content = base64.b64decode(answer.image_data, validate=True)
            else:
                assert answer.image_url is not None
                content = await self._download(answer.image_url)
        data: dict[str, object] = {} if answer.seed is None else {"seed": answer.seed}
        return Succeeded(files=[OutputFile(content, answer.mime_type)], data=data)

    async def _download(self, url: str) -> bytes:
        """A stored image's bytes (``storage_days`` answers), retried while it answers 404."""
        output = await _http.download(
            self.client,
            PROVIDER,
            url,
            kind="image",
            timeout_s=self.config.timeout_s,
            attempts=DOWNLOAD_ATTEMPTS,
            pause_s=DOWNLOAD_PAUSE_S,
        )
        return output.content
