"""ImagePipeline emulator, the wire: the documented request bodies and the inputs they name.

Each submission's JSON is validated against its endpoint's field table and read into the
:class:`~app.sandbox.imagepipeline_jobs.Work` it asks for, or refused with a :class:`Refusal`
carrying the document's error body. How the document is read (``app/providers/imagepipeline.py``
keeps the same readings):

- **Validation** is a synchronous ``422`` in the Errors page's ``HTTPValidationError`` shape,
  ``{"detail": [{"loc": ["body", <field>], "msg", "type"}]}`` (``field required`` /
  ``value_error.missing`` for a missing field). Unknown fields are ignored. A body that is not
  ``application/json`` is a ``400`` ``{"detail": …}``.
- **Inputs** are public URLs the service downloads at submission: one that is not http(s),
  cannot be fetched, is not an image (PNG, JPEG, WEBP) or, for ``reference_voice_url``, not a
  WAV, is a ``422`` naming the field. A picture of one uniform colour where a face is needed
  (faceswap ``source`` and ``target``, lock ``input_image``, replace ``input_image``,
  instamodel ``input_face``) is the sandbox's "no face": the job is accepted and fails.
- **Outputs.** Faceswap: the target's size times ``upscale`` (fitted within 4096 px); lock
  and instamodel: ``width`` × ``height`` (defaults 1024 × 1024 and 768 × 1024, at most
  2048); replace: the input's size; try-on: ``width``/``height`` or the person image's size
  (256–2048). Images come in ``output_format`` (default ``webp``). Voice clone: a WAV of
  about one second per 15 characters of ``text``, at most ``max_new_tokens`` / 25 seconds.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import httpx
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.sandbox import images
from app.sandbox.imagepipeline_jobs import Work

MAX_INPUT_BYTES = 25 * 1024 * 1024
MAX_OUTPUT_SIDE = 4096
FETCH_TIMEOUT_S = 10.0
IMAGE_FORMATS = frozenset({"png", "jpeg", "webp"})
CHARS_PER_SECOND = 15
TOKENS_PER_SECOND = 25

HexColour = Annotated[str, Field(pattern=r"^#(?:[0-9a-fA-F]{3}){1,2}$")]
OutputFormat = Literal["webp", "jpeg", "png"]
Text = Annotated[str, Field(min_length=1)]
Side = Annotated[int, Field(ge=64, le=2048)]
TryOnSide = Annotated[int, Field(ge=256, le=2048)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class Refusal(Exception):
    """A request refused with ``status`` and the document's ``{"detail": …}`` body."""

    def __init__(self, status: int, detail: object) -> None:
        super().__init__(status)
        self.status, self.detail = status, detail


def field_error(name: str, msg: str, kind: str) -> Refusal:
    return Refusal(422, [{"loc": ["body", name], "msg": msg, "type": kind}])


class _Body(BaseModel):
    """Fields every endpoint accepts."""

    model_config = ConfigDict(extra="ignore")

    callback_url: str | None = None
    server_id: str | None = None


class _ImageBody(_Body):
    output_format: OutputFormat = "webp"
    profile_id: str | None = None


class FaceswapBody(_ImageBody):
    target: str
    source: str
    upscale: float = Field(default=1.5, ge=1.0, le=4.0)
    restore_weight: Unit = 0.5
    palette: list[HexColour] | None = None


class LockBody(_ImageBody):
    prompt: Text
    input_image: str | None = None
    width: Side = 1024
    height: Side = 1024
    negative_prompt: str | None = None
    num_inference_steps: Annotated[int, Field(ge=1, le=100)] | None = None
    guidance_scale: Annotated[float, Field(ge=1.0, le=20.0)] | None = None
    seed: Annotated[int, Field(ge=-1)] = -1
    palette: list[HexColour] | None = None


class ReplaceBody(_ImageBody):
    input_image: str
    prompt: Text
    use_segmentation: bool = True
    tone_correction: Unit | None = None
    seed: Annotated[int, Field(ge=-1)] = -1
    palette: list[HexColour] | None = None


class InstamodelBody(_ImageBody):
    prompt: Text
    input_face: str
    width: Side = 768
    height: Side = 1024
    negative_prompt: str | None = None
    seed: Annotated[int, Field(ge=-1)] | None = None
    palette: list[HexColour] | None = None


class TryOnBody(_ImageBody):
    person_image: str
    clothing_image: str
    gender: Literal["man", "woman"]
    clothing_type: Text
    width: TryOnSide | None = None
    height: TryOnSide | None = None
    use_segmentation: bool = False
    tone_correction: Unit | None = None
    seed: Annotated[int, Field(ge=-1)] = -1


class VoiceBody(_Body):
    text: Text
    reference_voice_url: str
    language_id: str = "en"
    max_new_tokens: Annotated[int, Field(ge=1)] = 256
    exaggeration: Unit = 0.5
    apply_watermark: bool = True


def _v1_error(error: Any) -> dict[str, object]:
    """A pydantic error in the document's (FastAPI 0.x) shape."""
    loc = ["body", *error["loc"]]
    if error["type"] == "missing":
        return {"loc": loc, "msg": "field required", "type": "value_error.missing"}
    return {"loc": loc, "msg": error["msg"], "type": f"value_error.{error['type']}"}


BodyT = TypeVar("BodyT", bound=_Body)


async def _read(request: Request, model: type[BodyT]) -> BodyT:
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith("application/json"):
        raise Refusal(400, "Content-Type must be application/json")
    try:
        raw = await request.json()
    except ValueError as exc:
        error = {"loc": (), "msg": "JSON decode error", "type": "jsondecode"}
        raise Refusal(422, [_v1_error(error)]) from exc
    if not isinstance(raw, dict):
        error = {"loc": (), "msg": "value is not a valid dict", "type": "dict"}
        raise Refusal(422, [_v1_error(error)])
    try:
        body = model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise Refusal(422, [_v1_error(e) for e in errors]) from exc
    if body.callback_url is not None and not _is_url(body.callback_url):
        raise field_error("callback_url", "invalid or missing URL scheme", "value_error.url.scheme")
    return body


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value) > len("https://")


async def _download(client: httpx.AsyncClient, name: str, url: str) -> bytes:
    """The bytes at an input URL, or a 422 naming the field."""
    if not _is_url(url):
        raise field_error(name, "invalid or missing URL scheme", "value_error.url.scheme")
    data = bytearray()
    try:
        async with client.stream("GET", url, timeout=FETCH_TIMEOUT_S) as response:
            if not response.is_success:
                msg = f"could not fetch {name} (HTTP {response.status_code})"
                raise field_error(name, msg, "value_error.url.fetch")
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > MAX_INPUT_BYTES:
                    raise field_error(name, "file is larger than 25 MB", "value_error.size")
    except httpx.HTTPError as exc:
        raise field_error(name, f"could not fetch {name}", "value_error.url.fetch") from exc
    return bytes(data)


@dataclass(frozen=True)
class _Picture:
    width: int
    height: int
    faceless: bool


async def _picture(client: httpx.AsyncClient, name: str, url: str) -> _Picture:
    info = images.inspect(await _download(client, name, url))
    if info is None or info.format not in IMAGE_FORMATS:
        raise field_error(name, "not a valid image (PNG, JPEG or WEBP)", "value_error.image")
    return _Picture(info.width, info.height, info.uniform)


def _seed(seed: int | None) -> int:
    return random.randrange(2**31) if seed is None or seed < 0 else seed


def _fit(width: float, height: float, side: int) -> tuple[int, int]:
    ratio = min(1.0, side / max(width, height))
    return max(1, round(width * ratio)), max(1, round(height * ratio))


async def _faceswap(request: Request, client: httpx.AsyncClient) -> tuple[Work, str | None]:
    body = await _read(request, FaceswapBody)
    target = await _picture(client, "target", body.target)
    source = await _picture(client, "source", body.source)
    width, height = _fit(target.width * body.upscale, target.height * body.upscale, 4096)
    faceless = target.faceless or source.faceless
    work = Work("image", width, height, body.output_format, _seed(None), faceless=faceless)
    return work, body.callback_url


async def _lock(request: Request, client: httpx.AsyncClient) -> tuple[Work, str | None]:
    body = await _read(request, LockBody)
    faceless = False
    if body.input_image is not None:
        faceless = (await _picture(client, "input_image", body.input_image)).faceless
    work = Work(
        "image", body.width, body.height, body.output_format, _seed(body.seed), faceless=faceless
    )
    return work, body.callback_url


async def _replace(request: Request, client: httpx.AsyncClient) -> tuple[Work, str | None]:
    body = await _read(request, ReplaceBody)
    picture = await _picture(client, "input_image", body.input_image)
    work = Work(
        "image",
        picture.width,
        picture.height,
        body.output_format,
        _seed(body.seed),
        faceless=picture.faceless,
    )
    return work, body.callback_url


async def _instamodel(request: Request, client: httpx.AsyncClient) -> tuple[Work, str | None]:
    body = await _read(request, InstamodelBody)
    face = await _picture(client, "input_face", body.input_face)
    work = Work(
        "image",
        body.width,
        body.height,
        body.output_format,
        _seed(body.seed),
        faceless=face.faceless,
    )
    return work, body.callback_url


async def _try_on(request: Request, client: httpx.AsyncClient) -> tuple[Work, str | None]:
    body = await _read(request, TryOnBody)
    person = await _picture(client, "person_image", body.person_image)
    await _picture(client, "clothing_image", body.clothing_image)
    width = body.width or min(max(person.width, 256), 2048)
    height = body.height or min(max(person.height, 256), 2048)
    work = Work("image", width, height, body.output_format, _seed(body.seed))
    return work, body.callback_url


async def _voice_clone(request: Request, client: httpx.AsyncClient) -> tuple[Work, str | None]:
    body = await _read(request, VoiceBody)
    sample = await _download(client, "reference_voice_url", body.reference_voice_url)
    if not (sample[:4] == b"RIFF" and sample[8:12] == b"WAVE"):
        raise field_error("reference_voice_url", "not a WAV audio file", "value_error.audio")
    spoken = max(0.5, len(body.text) / CHARS_PER_SECOND)
    seconds = min(spoken, body.max_new_tokens / TOKENS_PER_SECOND)
    work = Work("audio", 0, 0, "wav", 0, duration_s=round(seconds, 3))
    return work, body.callback_url


Parser = Callable[[Request, httpx.AsyncClient], Awaitable[tuple[Work, str | None]]]

PARSERS: dict[str, Parser] = {
    "/identity/faceswap/image/v1": _faceswap,
    "/identity/lock/image/v1": _lock,
    "/identity/replace/image/v1": _replace,
    "/creator/instamodel/image/v1": _instamodel,
    "/creator/tryon/image/v1": _try_on,
    "/identity/voice/clone/v1": _voice_clone,
}
"""Each submission endpoint's reader: the work asked for and its ``callback_url``."""
