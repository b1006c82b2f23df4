"""Emulator of Image Pig's synchronous JSON API (``providers/imagepig.txt``).

``POST /``, ``/xl``, ``/flux``, ``/faceswap``, ``/cutout``, ``/upscale``, ``/outpaint`` take
the documented JSON attributes and answer ``image_data`` (base64 of a real image),
``mime_type``, ``seed`` (not on ``/faceswap``), ``started_at`` and ``completed_at``; errors
answer ``{"error", "started_at", "completed_at"}``. Output sizes follow the document: 512 px
squares from ``/``, 1024 px from ``/xl``, ``/flux`` by ``proportion``; ``/cutout`` a PNG with
alpha at the input's size; ``/upscale`` the input times ``upscaling_factor``, fitted within
8096×8096; ``/outpaint`` the input (downscaled to 1024 px) plus the requested sides;
``/faceswap`` the target's size (downscaled to 1024 px).

Readings of what the document leaves open (the adapter keeps the same ones):

- Auth: a missing or unknown ``Api-Key`` is ``401``. A body that is not JSON, a
  ``Content-Type`` other than ``application/json``, an attribute the endpoint does not
  document, a value of the wrong type or range, neither or both of ``*_url``/``*_data``,
  bad base64, an image that cannot be downloaded or decoded: ``400``. Unknown attributes are
  refused rather than ignored, so a client cannot come to rely on one.
  (The official client also reads FastAPI's ``422 {"detail": [...]}``; the adapter reads both.)
- ``language``: only the document's 29 codes (``en``, the default, is not one of them).
  ``positive_prompt``/``prompt`` are aliases, neither required; FLUX has no ``negative_prompt``.
- ``422`` when no face is found in either face-swap image; the sandbox reads a picture of one
  uniform colour as having no face.
- Background removal and upscaling are deterministic models: their output ignores ``seed``
  (still echoed back). Generation and outpainting without a ``seed`` draw a random one.
- ``storage_days`` > 0 answers ``image_url`` instead of ``image_data`` (the sandbox key is a
  paid plan); the file is kept in memory and served under ``/storage/``.
- A submission is counted for every answer that carries an image (what the service bills).

Faults (``POST /_sandbox/faults``), served on every endpoint after the key is checked:
``http_500`` → 500; ``timeout`` → no answer for an hour; ``rate_limit`` → 429 with
``Retry-After``; ``no_face`` → 422; ``blocked`` → 403, the Stable Diffusion services'
convention for a moderation refusal (the document describes no moderation); ``garbage`` →
200 with an HTML page; ``no_credits`` → 402 Payment Required, the plan's API calls used up.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import random
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import httpx
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from pydantic import (
    ValidationError,
)

from app.sandbox import fetch, images
from app.sandbox.control import Fault, FaultTarget, SandboxControl
from app.sandbox.credentials import IMAGEPIG_API_KEY
from app.sandbox.imagepig_wire import (
    Body,
    CutoutBody,
    FaceswapBody,
    FluxBody,
    Format,
    ImageRef,
    OutpaintBody,
    TextBody,
    UpscaleBody,
)
from app.sandbox.timing import SandboxTiming

PROVIDER = "imagepig"

SD_SIZE = 512
XL_SIZE = 1024
INPUT_MAX_SIDE = 1024
"""Face swap and outpaint inputs are downscaled to this many pixels."""
UPSCALE_MAX_SIDE = 8096
FLUX_SIZES: dict[str, tuple[int, int]] = {
    "landscape": (1216, 832),
    "portrait": (832, 1216),
    "square": (1024, 1024),
    "wide": (1344, 768),
    "vertical": (576, 1024),
}
INLINE_RENDER_PIXELS = 1_500_000
"""Pictures up to this size (every generation size) are rendered on the event loop."""
STORED_FILES = 64
"""Images kept for ``storage_days`` answers (the oldest are forgotten first)."""
RETRY_AFTER_S = 1
FETCH_TIMEOUT_S = 10.0

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}
_PIL_FORMAT = {"JPEG": "jpeg", "PNG": "png"}

_FAULT_ERRORS: dict[Fault, tuple[int, str]] = {
    Fault.http_500: (500, "Internal server error, please try again later."),
    Fault.rate_limit: (429, "Too many requests, slow down."),
    Fault.no_face: (422, "No face detected."),
    Fault.blocked: (403, "The request was refused by content moderation."),
    Fault.no_credits: (402, "All API calls of your plan have been used."),
}
_GARBAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
_TIMEOUT_S = 3600.0


class _Refused(Exception):
    """The request cannot be served: answered as an error body with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _Picture:
    """What an endpoint produced: the image to render, and the seed to report."""

    width: int
    height: int
    format: Format
    seed: int | None
    tint: int = 0
    alpha: bool = False

    def render(self) -> bytes:
        fmt = _PIL_FORMAT[self.format]
        return images.render(self.width, self.height, fmt, self.tint, self.alpha)

    async def content(self) -> bytes:
        """The image bytes; large ones are rendered off the event loop, which the gateway
        shares in sandbox mode (small ones are usually cached, and a thread hop costs more)."""
        if self.width * self.height <= INLINE_RENDER_PIXELS:
            return self.render()
        return await asyncio.to_thread(self.render)


def _seed(seed: int | None) -> int:
    return random.getrandbits(63) if seed is None else seed


def _generated(width: int, height: int, fmt: Format, seed: int | None) -> _Picture:
    """A picture that depends on the seed (a random one when the request gives none)."""
    seed = _seed(seed)
    # ``render`` tints by the seed modulo 256: passing the residue keeps its cache small.
    return _Picture(width, height, fmt, seed, tint=seed % 256)


def _fit(width: int, height: int, limit: int) -> tuple[int, int]:
    """``width``×``height`` scaled down (never up) so that neither side exceeds ``limit``."""
    ratio = min(1.0, limit / max(width, height))
    return max(1, round(width * ratio)), max(1, round(height * ratio))


async def _download(url: str) -> bytes:
    try:
        async with fetch.client(FETCH_TIMEOUT_S) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise _Refused(400, f"Could not download the image from {url}.") from exc
    if not response.is_success:
        raise _Refused(400, f"Could not download the image from {url} ({response.status_code}).")
    return response.content


async def _load(ref: ImageRef) -> bytes:
    if ref.url is not None:
        return await _download(ref.url)
    assert ref.data is not None
    try:
        return base64.b64decode(ref.data, validate=True)
    except binascii.Error as exc:
        raise _Refused(400, "The image data is not valid base64.") from exc


def _size(content: bytes) -> tuple[int, int]:
    """The image's size from its header alone (no decoding of the pixels)."""
    try:
        with Image.open(io.BytesIO(content)) as img:
            return img.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise _Refused(400, "The input image could not be decoded.") from exc


async def _face_picture(ref: ImageRef, role: str) -> images.ImageInfo:
    info = images.inspect(await _load(ref))
    if info is None:
        raise _Refused(400, f"The {role} image could not be decoded.")
    if info.uniform:
        raise _Refused(422, f"No face detected in the {role} image.")
    return info


async def _default(body: TextBody) -> _Picture:
    return _generated(SD_SIZE, SD_SIZE, body.format, body.seed)


async def _xl(body: TextBody) -> _Picture:
    return _generated(XL_SIZE, XL_SIZE, body.format, body.seed)


async def _flux(body: FluxBody) -> _Picture:
    return _generated(*FLUX_SIZES[body.proportion], body.format, body.seed)


async def _cutout(body: CutoutBody) -> _Picture:
    width, height = _size(await _load(body.image))
    return _Picture(width, height, "PNG", _seed(body.seed), alpha=True)


async def _upscale(body: UpscaleBody) -> _Picture:
    width, height = _size(await _load(body.image))
    factor = body.upscaling_factor
    width, height = _fit(width * factor, height * factor, UPSCALE_MAX_SIDE)
    return _Picture(width, height, body.format, _seed(body.seed))


async def _outpaint(body: OutpaintBody) -> _Picture:
    width, height = _fit(*_size(await _load(body.image)), INPUT_MAX_SIDE)
    width += body.left + body.right
    height += body.top + body.bottom
    return _generated(width, height, body.format, body.seed)


async def _faceswap(body: FaceswapBody) -> _Picture:
    await _face_picture(body.source, "source")
    info = await _face_picture(body.target, "target")
    width, height = _fit(info.width, info.height, INPUT_MAX_SIDE)
    return _Picture(width, height, body.format, None)


# -- HTTP -----------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _error(status: int, message: str, started_at: str) -> JSONResponse:
    body = {"error": message, "started_at": started_at, "completed_at": _now()}
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 429 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _auth_refusal(request: Request) -> str | None:
    key = request.headers.get("Api-Key")
    if not key:
        return "Missing Api-Key header."
    if key != IMAGEPIG_API_KEY:
        return "Invalid API key."
    return None


async def _fault_answer(fault: Fault, started_at: str) -> Response:
    if fault is Fault.timeout:
        await asyncio.sleep(_TIMEOUT_S)
    if fault is Fault.garbage:
        return Response(_GARBAGE, media_type="text/html")
    status, message = _FAULT_ERRORS.get(fault, (504, "Gateway timeout."))
    return _error(status, message, started_at)


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


B = TypeVar("B", bound=Body)


async def _parse(request: Request, model: type[B]) -> B:
    if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
        raise _Refused(400, "Content-Type must be application/json.")
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _Refused(400, _describe(exc)) from exc


class _Emulator:
    """Per-sandbox state: fault control, timing, and the files kept for ``storage_days``."""

    def __init__(self, control: SandboxControl, timing: SandboxTiming) -> None:
        self.control = control
        self.timing = timing
        self.stored: OrderedDict[str, tuple[bytes, str]] = OrderedDict()

    async def serve(
        self,
        request: Request,
        endpoint: str,
        model: type[B],
        work: Callable[[B], Awaitable[_Picture]],
    ) -> Response:
        started_at = _now()
        response = await self._answer(request, endpoint, model, work, started_at)
        if self.timing.latency_s > 0:
            await asyncio.sleep(self.timing.latency_s)
        return response

    async def _answer(
        self,
        request: Request,
        endpoint: str,
        model: type[B],
        work: Callable[[B], Awaitable[_Picture]],
        started_at: str,
    ) -> Response:
        self.control.count_request(PROVIDER, endpoint)
        refusal = _auth_refusal(request)
        if refusal is not None:
            return _error(401, refusal, started_at)
        fault = self.control.take_fault(PROVIDER, FaultTarget.submit, request.url.path)
        if fault is not None:
            return await _fault_answer(fault, started_at)
        try:
            body = await _parse(request, model)
            picture = await work(body)
        except _Refused as refused:
            return _error(refused.status, refused.message, started_at)
        self.control.count_submission(PROVIDER)
        return await self._success(request, body.storage_days, picture, started_at)

    async def _success(
        self, request: Request, storage_days: int, picture: _Picture, started_at: str
    ) -> JSONResponse:
        content = await picture.content()
        mime_type = _MIME[picture.format]
        answer: dict[str, object] = {"mime_type": mime_type}
        if storage_days > 0:
            answer["image_url"] = self._store(request, content, mime_type)
        else:
            answer["image_data"] = base64.b64encode(content).decode("ascii")
        if picture.seed is not None:
            answer["seed"] = picture.seed
        answer |= {"started_at": started_at, "completed_at": _now()}
        return JSONResponse(answer)

    def _store(self, request: Request, content: bytes, mime_type: str) -> str:
        name = f"{uuid.uuid4().hex}.{mime_type.removeprefix('image/')}"
        self.stored[name] = (content, mime_type)
        while len(self.stored) > STORED_FILES:
            self.stored.popitem(last=False)
        return str(request.url_for("imagepig_storage", name=name))

    def stored_file(self, name: str) -> Response:
        found = self.stored.get(name)
        if found is None:
            raise HTTPException(404)
        content, mime_type = found
        return Response(content, media_type=mime_type)


def router(control: SandboxControl, timing: SandboxTiming, prefix: str = "") -> APIRouter:
    emulator = _Emulator(control, timing)
    api = APIRouter(prefix=prefix, include_in_schema=False)

    def post(path: str, model: type[B], work: Callable[[B], Awaitable[_Picture]]) -> None:
        async def endpoint(request: Request) -> Response:
            return await emulator.serve(request, path, model, work)

        api.add_api_route(path, endpoint, methods=["POST"], name=f"imagepig{path}")

    post("/", TextBody, _default)
    post("/xl", TextBody, _xl)
    post("/flux", FluxBody, _flux)
    post("/faceswap", FaceswapBody, _faceswap)
    post("/cutout", CutoutBody, _cutout)
    post("/upscale", UpscaleBody, _upscale)
    post("/outpaint", OutpaintBody, _outpaint)

    @api.get("/storage/{name}", name="imagepig_storage")
    async def storage(name: str) -> Response:
        return emulator.stored_file(name)

    return api
