"""PixelAPI emulator, the wire: the User-Agent and key checks and the image endpoints' shapes.

Each image submission's body is read here into the :class:`~app.sandbox.pixelapi_jobs.Work`
it asks for, or refused with a :class:`Refusal` carrying the API's ``{"detail": …}``; the audio
and video bodies are in ``pixelapi_media_wire``, try-on's in ``pixelapi_tryon``. How the
document is read (``app/providers/pixelapi.py`` keeps the same readings):

- **User-Agent.** "Requests without a proper User-Agent may be blocked by our CDN" (403), and
  urllib users "MUST set" one: 403 when the header is missing or blank, or when every product
  token in it is a stock HTTP library or runtime (``python-requests/…``, ``python-httpx/…``,
  ``Python-urllib/…``, ``Python/… aiohttp/…``, ``curl/…``, ``Wget/…``, ``Go-http-client/…``).
  One custom product anywhere (``MyApp/1.0``, ``pixelapi-python/0.2.0``) passes. The CDN
  answers before the API, so that 403 is Cloudflare's plain text ``error code: 1010``, on
  every path.
- **Shapes.** Every image endpoint takes multipart (an ``image`` file, text fields) or JSON
  (``image_url``, the same text fields); the document shows JSON for remove background,
  replace background, restore face and upscale, and the official SDK also sends remove
  object as JSON (``image_url``, ``mask_url``), so JSON is accepted there too, ``mask_url``
  being the mask's URL form. A picture given both ways is a 400; a missing required field a
  422 in FastAPI's shape.
- **Sizes.** Generation renders ``width``×``height`` (512–1536, default 1024; ``steps`` within
  the model's range; ``negative_prompt`` ignored by FLUX). Background removal gives a PNG with
  alpha at the input's size, upscale a PNG at 4× it; replace background, restore face and
  remove object a PNG at the input's size. "Maximum resolution is 4096×4096" holds in and
  out: an input over 4096 px, or an upscale input over 1024 px, is a 400. Remove object's
  mask must be a picture of the "same dimensions as source" (else 400); with neither mask nor
  prompt it is a 422.
- **image_url** (JSON, or a form field without a file) is downloaded at submission under the
  same 10 MB cap; a URL that cannot be fetched or is not an image is a 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from app.sandbox import fetch, images
from app.sandbox.pixelapi_jobs import Operation, Work

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_SIDE = 4096
UPSCALE_FACTOR = 4
FETCH_TIMEOUT_S = 10.0
FETCH_USER_AGENT = "PixelAPI-Fetcher/1.0"
ACCEPTED_FORMATS = frozenset({"jpeg", "png", "webp"})

STEPS = {"flux-schnell": (1, 8), "sdxl": (20, 50)}
STOCK_PRODUCTS = frozenset(
    {
        "python-requests", "python-httpx", "python-urllib", "python", "aiohttp", "httpx",
        "curl", "wget", "go-http-client", "okhttp", "java", "node", "node-fetch", "undici",
        "axios", "libwww-perl",
    }
)  # fmt: skip


class Refusal(Exception):
    """A request refused with the API's ``{"detail": …}`` body."""

    def __init__(self, status: int, detail: object) -> None:
        super().__init__(status)
        self.status, self.detail = status, detail


def proper_user_agent(agent: str | None) -> bool:
    """False when the agent is missing, blank, or names only stock libraries and runtimes."""
    depth, kept = 0, []
    for char in agent or "":  # drop "(comments)", keep product tokens
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    names = [token.split("/", 1)[0].lower() for token in "".join(kept).split()]
    return any(name not in STOCK_PRODUCTS for name in names)


def bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def field_error(kind: str, name: str, msg: str, value: object = None) -> dict[str, object]:
    """One FastAPI validation error (``loc`` is ``["body"]`` for the body as a whole)."""
    loc = ["body"] if name == "body" else ["body", name]
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


def validation_refusal(exc: ValidationError) -> Refusal:
    """A pydantic failure as FastAPI's 422."""
    errors = exc.errors(include_url=False, include_context=False)
    return Refusal(422, [{**e, "loc": ["body", *e["loc"]]} for e in errors])


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise Refusal(422, [field_error("json_invalid", "body", "JSON decode error")]) from exc
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        raise Refusal(422, [field_error("model_attributes_type", "body", msg, body)])
    return body


# generation -------------------------------------------------------------------------------------


class _GenerateBody(BaseModel):
    """``POST /v1/image/generate`` as documented (FastAPI validates it the same way)."""

    model_config = ConfigDict(extra="ignore")

    model: Literal["flux-schnell", "sdxl"]
    prompt: str = Field(min_length=1)
    negative_prompt: str | None = None
    width: int = Field(default=1024, ge=512, le=1536)
    height: int = Field(default=1024, ge=512, le=1536)
    steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None

    @model_validator(mode="after")
    def _steps_in_model_range(self) -> _GenerateBody:
        low, high = STEPS[self.model]
        if self.steps is not None and not low <= self.steps <= high:
            raise ValueError(f"steps must be from {low} to {high} for {self.model}")
        return self


async def _parse_generate(request: Request) -> Work:
    try:
        body = _GenerateBody.model_validate(await json_object(request))
    except ValidationError as exc:
        raise validation_refusal(exc) from exc
    return Work(body.width, body.height, model=body.model, seed=body.seed)


# pictures in, multipart or JSON -----------------------------------------------------------------


@dataclass
class _Fields:
    """A submission's fields: uploaded files, and everything else (form text or JSON values)."""

    files: dict[str, bytes] = field(default_factory=dict)
    values: dict[str, object] = field(default_factory=dict)


async def _read_fields(request: Request, file_names: tuple[str, ...]) -> _Fields:
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("application/json"):
        return _Fields(values=await json_object(request))
    if not content_type.startswith("multipart/form-data"):
        detail = "Send multipart/form-data with an image file, or application/json with image_url."
        raise Refusal(400, detail)
    fields = _Fields()
    try:
        async with request.form() as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    fields.files[name] = await value.read()
                elif name in file_names:
                    raise Refusal(422, [field_error("value_error", name, "Expected a file")])
                else:
                    fields.values[name] = value
    except (MultiPartException, HTTPException) as exc:
        raise Refusal(400, f"Malformed multipart body: {exc}") from exc
    return fields


def _measure(data: bytes, name: str = "image") -> tuple[int, int]:
    if len(data) > MAX_UPLOAD_BYTES:
        raise Refusal(413, "File too large. Maximum size is 10MB.")
    info = images.inspect(data)
    if info is None or info.format not in ACCEPTED_FORMATS:
        what = "image file" if name == "image" else f"{name} file"
        raise Refusal(400, f"Invalid {what}. Supported formats: JPEG, PNG, WebP.")
    if max(info.width, info.height) > MAX_SIDE:
        detail = f"Image is {info.width}x{info.height}; maximum resolution is 4096x4096 pixels."
        raise Refusal(400, detail)
    return info.width, info.height


async def _picture(fields: _Fields, name: str, *, required: bool) -> tuple[int, int] | None:
    """The size of the picture in ``name`` (an upload) or ``{name}_url`` (downloaded)."""
    data, url = fields.files.get(name), fields.values.get(f"{name}_url")
    if data is not None and url is not None:
        raise Refusal(400, f"Provide either {name} (file upload) or {name}_url (JSON), not both.")
    if data is not None:
        return _measure(data, name)
    if url is None:
        if required:
            raise Refusal(422, [field_error("missing", name, "Field required")])
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        msg = f"{name}_url must be a public http(s) URL"
        raise Refusal(422, [field_error("url_parsing", f"{name}_url", msg, url)])
    return _measure(await _download(url), name)


def _text(fields: _Fields, name: str, *, required: bool) -> str | None:
    value = fields.values.get(name)
    if value is None:
        if required:
            raise Refusal(422, [field_error("missing", name, "Field required")])
        return None
    if not isinstance(value, str):
        raise Refusal(
            422, [field_error("string_type", name, "Input should be a valid string", value)]
        )
    if not value.strip():
        msg = "String should have at least 1 character"
        raise Refusal(422, [field_error("string_too_short", name, msg, value)])
    return value


async def _download(url: str) -> bytes:
    """The picture at ``url``, read up to one byte past the cap."""
    data = bytearray()
    headers = {"User-Agent": FETCH_USER_AGENT}
    try:
        async with fetch.client(FETCH_TIMEOUT_S) as client:
            async with client.stream("GET", url, headers=headers) as response:
                if not response.is_success:
                    detail = f"Could not download image_url (HTTP {response.status_code})."
                    raise Refusal(400, detail)
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_UPLOAD_BYTES:
                        break
    except httpx.HTTPError as exc:
        raise Refusal(400, "Could not download image_url.") from exc
    return bytes(data)


async def _image_size(request: Request) -> tuple[int, int]:
    size = await _picture(await _read_fields(request, ("image",)), "image", required=True)
    assert size is not None
    return size


async def _parse_remove_background(request: Request) -> Work:
    width, height = await _image_size(request)
    return Work(width, height, alpha=True)


async def _parse_upscale(request: Request) -> Work:
    width, height = await _image_size(request)
    if max(width, height) * UPSCALE_FACTOR > MAX_SIDE:
        detail = (
            f"Image is {width}x{height}; the 4x output would exceed the maximum resolution of "
            "4096x4096 pixels. Use an input of at most 1024x1024."
        )
        raise Refusal(400, detail)
    return Work(width * UPSCALE_FACTOR, height * UPSCALE_FACTOR)


async def _parse_restore_face(request: Request) -> Work:
    width, height = await _image_size(request)
    return Work(width, height)


async def _parse_replace_background(request: Request) -> Work:
    fields = await _read_fields(request, ("image",))
    size = await _picture(fields, "image", required=True)
    _text(fields, "prompt", required=True)
    assert size is not None
    return Work(*size)


async def _parse_remove_object(request: Request) -> Work:
    fields = await _read_fields(request, ("image", "mask"))
    size = await _picture(fields, "image", required=True)
    mask = await _picture(fields, "mask", required=False)
    prompt = _text(fields, "prompt", required=False)
    assert size is not None
    if mask is None and prompt is None:
        msg = "Provide either mask or prompt (or both for best results)."
        raise Refusal(422, [field_error("value_error", "body", msg)])
    if mask is not None and mask != size:
        detail = (
            f"Mask is {mask[0]}x{mask[1]} but the image is {size[0]}x{size[1]}; "
            "the mask must have the same dimensions as the source image."
        )
        raise Refusal(400, detail)
    return Work(*size)


IMAGE_PARSERS: dict[Operation, Callable[[Request], Awaitable[Work]]] = {
    "generate": _parse_generate,
    "remove-background": _parse_remove_background,
    "replace-background": _parse_replace_background,
    "upscale": _parse_upscale,
    "restore-face": _parse_restore_face,
    "remove-object": _parse_remove_object,
}
"""Each ``/v1/image/…`` submission's body reader: the work asked for, or a :class:`Refusal`."""
