"""PixelAPI's endpoints, and the request each canonical operation becomes.

Each operation has an :class:`Endpoint`: where it is submitted, where its job is polled, which
key of the submission answer names the job, and what kind of file the result is. The builders
turn a call into the keyword arguments of ``httpx.AsyncClient.post`` (``json=`` or ``files=`` /
``data=``); the binding checks refuse what the document rules out before anything is sent.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from app.domain.media import MediaInput
from app.domain.operations import (
    GenerateAudio,
    GenerateImage,
    GenerateVideo,
    Operation,
    Params,
    RemoveObject,
    ReplaceBackground,
    TryOn,
)
from app.providers._conform import UnreadablePicture, read_conformed
from app.providers.base import Call, Media
from app.providers.media_limits import PIXELAPI as IMAGE_LIMITS
from app.providers.media_limits import PIXELAPI_UPSCALE, ImageLimits

Kind = Literal["image", "audio", "video"]


@dataclass(frozen=True)
class Endpoint:
    submit: str
    poll: str
    """Status path, ``{id}`` standing for the (escaped) job id."""
    id_field: str = "generation_id"
    output: Kind = "image"


IMAGE_STATUS = "/v1/image/{id}"
ENDPOINTS: Final[Mapping[Operation, Endpoint]] = {
    Operation.image_generate: Endpoint("/v1/image/generate", IMAGE_STATUS),
    Operation.image_remove_background: Endpoint("/v1/image/remove-background", IMAGE_STATUS),
    Operation.image_replace_background: Endpoint("/v1/image/replace-background", IMAGE_STATUS),
    Operation.image_upscale: Endpoint("/v1/image/upscale", IMAGE_STATUS),
    Operation.image_restore_face: Endpoint("/v1/image/restore-face", IMAGE_STATUS),
    Operation.image_remove_object: Endpoint("/v1/image/remove-object", IMAGE_STATUS),
    Operation.image_try_on: Endpoint(
        "/v1/virtual-tryon", "/v1/virtual-tryon/jobs/{id}", id_field="job_id"
    ),
    Operation.audio_generate: Endpoint("/v1/audio/generate", IMAGE_STATUS, output="audio"),
    Operation.video_generate: Endpoint("/v1/video/generate", "/v1/video/{id}", output="video"),
}

IMAGE_MODELS: Final[Mapping[str, str]] = {"flux-schnell": "flux-schnell", "sdxl": "sdxl"}
"""Canonical model → PixelAPI model id (image.generate)."""
DEFAULT_IMAGE_MODEL = "flux-schnell"
NEGATIVE_PROMPT_MODELS = frozenset({"sdxl"})
SIDE_RANGE = range(512, 1537)
"""Documented ``width``/``height``: 512–1536."""
STEPS: Final[Mapping[str, range]] = {"sdxl": range(20, 51), "flux-schnell": range(1, 9)}
"""Documented ``steps``: "SDXL: 20–50 (default 30). FLUX: 1–8 (default 4)"."""
UPSCALE_FACTOR = 4
AUDIO_MODELS: Final[Mapping[str, str]] = {"musicgen-small": "musicgen-small"}
AUDIO_PROMPT_LENGTH = range(3, 501)
"""Documented audio ``prompt``: 3–500 characters."""
TRY_ON_CATEGORIES: Final[Mapping[str, str]] = {
    "upper_body": "upperbody",
    "lower_body": "lowerbody",
    "dress": "dress",
    "full_body": "dress",
}
"""Canonical try-on category → PixelAPI's (``dress``: "full dresses, jumpsuits, full-body
garments")."""
DEFAULT_TRY_ON_CATEGORY = "upper_body"


# binding checks ---------------------------------------------------------------------------------


def refuse_generate(params: Params) -> str | None:
    """Sizes outside 512–1536, and ``negative_prompt`` with a model that ignores it."""
    if not isinstance(params, GenerateImage):
        return None
    for name in ("width", "height"):
        value = getattr(params, name)
        if value is not None and value not in SIDE_RANGE:
            return name
    model = params.model or DEFAULT_IMAGE_MODEL
    if params.negative_prompt is not None and model not in NEGATIVE_PROMPT_MODELS:
        return "negative_prompt"
    if params.steps is not None and params.steps not in STEPS[model]:
        return "steps"
    return None


def refuse_audio(params: Params) -> str | None:
    """A prompt outside the documented 3–500 characters."""
    if isinstance(params, GenerateAudio) and len(params.prompt) not in AUDIO_PROMPT_LENGTH:
        return "prompt"
    return None


# request builders -------------------------------------------------------------------------------

Request = dict[str, Any]
"""Keyword arguments of ``httpx.AsyncClient.post``."""


def _given(params: Params, names: Mapping[str, str]) -> dict[str, Any]:
    """The canonical parameters the client set, under PixelAPI's names."""
    given = params.given()
    values = {wire: getattr(params, name) for name, wire in names.items() if name in given}
    return {wire: value for wire, value in values.items() if value is not None}


async def _read(
    call: Call,
    ref: MediaInput,
    limits: ImageLimits = IMAGE_LIMITS,
    mask_of: Media | None = None,
) -> Media:
    """A picture fitted to ``limits`` (sent as it is when Pillow cannot read it); ``mask_of``:
    the picture, as sent, whose pixel size the mask ``ref`` must have too."""
    try:
        return await read_conformed(call, ref, limits, mask_of)
    except UnreadablePicture:
        return await call.media.read(ref)


def _part(media: Media, name: str) -> tuple[str, bytes, str]:
    extension = media.content_type.rpartition("/")[2] or "bin"
    return f"{name}.{extension}", media.content, media.content_type


async def _upload(
    call: Call, ref: MediaInput, name: str, limits: ImageLimits = IMAGE_LIMITS
) -> tuple[str, bytes, str]:
    return _part(await _read(call, ref, limits), name)


async def _image(
    call: Call, fields: dict[str, Any] | None = None, limits: ImageLimits = IMAGE_LIMITS
) -> Request:
    """JSON ``image_url`` for a URL reference, else the bytes, fitted to ``limits``, as the
    multipart ``image``; any text ``fields`` go alongside (JSON members, or form fields)."""
    ref: MediaInput = call.params.media()["image"]
    fields = fields or {}
    if ref.url is not None:
        return {"json": {"image_url": call.media.public_url(ref), **fields}}
    request: Request = {"files": {"image": await _upload(call, ref, "image", limits)}}
    if fields:
        request["data"] = fields
    return request


async def _generate(call: Call) -> Request:
    params = call.params
    assert isinstance(params, GenerateImage)
    body: dict[str, Any] = {
        "model": IMAGE_MODELS[params.model or DEFAULT_IMAGE_MODEL],
        "prompt": params.prompt,
    }
    for name in ("negative_prompt", "width", "height", "steps", "guidance_scale", "seed"):
        if (value := getattr(params, name)) is not None:
            body[name] = value
    return {"json": body}


async def _replace_background(call: Call) -> Request:
    assert isinstance(call.params, ReplaceBackground)
    return await _image(call, {"prompt": call.params.prompt})


async def _remove_object(call: Call) -> Request:
    """Always multipart, the only shape the document gives: ``image``, ``mask``, ``prompt``.
    The mask ("Same dimensions as source") is fitted to the size the image is sent at."""
    params = call.params
    assert isinstance(params, RemoveObject)
    image = await _read(call, params.image)
    files = {"image": _part(image, "image")}
    if params.mask is not None:
        files["mask"] = _part(await _read(call, params.mask, mask_of=image), "mask")
    request: Request = {"files": files}
    if params.prompt is not None:
        request["data"] = {"prompt": params.prompt}
    return request


async def _try_on(call: Call) -> Request:
    """Both pictures as plain base64 (no ``data:`` prefix) and the mapped category."""
    params = call.params
    assert isinstance(params, TryOn)
    person = await _read(call, params.person)
    garment = await _read(call, params.garment)
    category = TRY_ON_CATEGORIES[params.category or DEFAULT_TRY_ON_CATEGORY]
    return {
        "json": {
            "person_image": base64.b64encode(person.content).decode("ascii"),
            "garment_image": base64.b64encode(garment.content).decode("ascii"),
            "category": category,
        }
    }


async def _audio(call: Call) -> Request:
    params = call.params
    assert isinstance(params, GenerateAudio)
    body = {"prompt": params.prompt, **_given(params, {"duration_s": "duration"})}
    if params.model is not None:
        body["model"] = AUDIO_MODELS[params.model]
    return {"json": body}


async def _video(call: Call) -> Request:
    params = call.params
    assert isinstance(params, GenerateVideo)
    names = {
        "duration_s": "duration",
        "resolution": "resolution",
        "negative_prompt": "negative_prompt",
        "seed": "seed",
    }
    return {"json": {"prompt": params.prompt, **_given(params, names)}}


async def _upscale(call: Call) -> Request:
    """An upload fitted to the upscale's own input limit (``PIXELAPI_UPSCALE``: its 4× output
    within 4096 px). A URL goes as ``image_url`` as given: PixelAPI fetches it, and one over
    1,024 px is refused upstream on this reading, the job failing without a charge."""
    return await _image(call, limits=PIXELAPI_UPSCALE)


READS_BYTES: Final = frozenset({Operation.image_remove_object, Operation.image_try_on})
"""Operations whose request carries the pictures' bytes, whatever the reference."""

BUILDERS: Final[Mapping[Operation, Callable[[Call], Awaitable[Request]]]] = {
    Operation.image_generate: _generate,
    Operation.image_remove_background: _image,
    Operation.image_replace_background: _replace_background,
    Operation.image_upscale: _upscale,
    Operation.image_restore_face: _image,
    Operation.image_remove_object: _remove_object,
    Operation.image_try_on: _try_on,
    Operation.audio_generate: _audio,
    Operation.video_generate: _video,
}
