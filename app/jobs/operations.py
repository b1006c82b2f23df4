"""The canonical operations: their names, routes and typed parameter models.

A parameter model holds only what describes the work (media, prompt, sizes). Routing fields
(``provider``, ``fallback``), ``callback_url`` and ``metadata`` live on the request envelope,
so adapters never see them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.media import MediaInput


class Operation(StrEnum):
    """Every canonical operation (DESIGN §2.2). The value is the public name."""

    image_generate = "image.generate"
    image_remove_background = "image.remove_background"
    image_replace_background = "image.replace_background"
    image_upscale = "image.upscale"
    image_restore_face = "image.restore_face"
    image_remove_object = "image.remove_object"
    image_outpaint = "image.outpaint"
    image_colorize = "image.colorize"
    image_swap_face = "image.swap_face"
    image_hairstyle = "image.hairstyle"
    image_age = "image.age"
    image_transfer_makeup = "image.transfer_makeup"
    image_try_on = "image.try_on"
    image_lock_identity = "image.lock_identity"
    image_replace_identity = "image.replace_identity"
    image_instamodel = "image.instamodel"
    image_keywords = "image.keywords"
    image_caption = "image.caption"
    image_faces = "image.faces"
    image_quality = "image.quality"
    video_keywords = "video.keywords"
    video_swap_face = "video.swap_face"
    video_lipsync = "video.lipsync"
    video_generate = "video.generate"
    audio_speech = "audio.speech"
    audio_generate = "audio.generate"
    audio_clone_voice = "audio.clone_voice"


Aspect = Literal["square", "landscape", "portrait", "wide", "vertical"]
OutputFormat = Literal["png", "jpeg", "webp"]
Seed = Annotated[int, Field(ge=0, le=2**64 - 1)]
Prompt = Annotated[str, Field(min_length=1, max_length=2000)]


class Params(BaseModel):
    """Base of every operation's parameters. Unknown fields are refused, never dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def media(self) -> dict[str, MediaInput]:
        """The media inputs of this request, by canonical field name."""
        return {k: v for k, v in self if isinstance(v, MediaInput)}

    def given(self) -> set[str]:
        """Names of the parameters the client actually set."""
        return set(self.model_fields_set)


class GenerateImage(Params):
    prompt: Prompt
    negative_prompt: Annotated[str, Field(max_length=2000)] | None = None
    model: Literal["sd1.5", "sdxl", "flux-schnell"] | None = Field(
        default=None, description="Model family; providers offer different subsets."
    )
    width: Annotated[int, Field(ge=64, le=4096)] | None = None
    height: Annotated[int, Field(ge=64, le=4096)] | None = None
    aspect: Aspect | None = None
    seed: Seed | None = None
    output_format: OutputFormat | None = None


class RemoveBackground(Params):
    image: MediaInput
    seed: Seed | None = None


class Upscale(Params):
    image: MediaInput
    scale: Literal[1, 2, 4, 8] | None = Field(
        default=None, description="Upscaling factor; the provider's default when omitted."
    )
    seed: Seed | None = None
    output_format: OutputFormat | None = None


class SwapFace(Params):
    source: MediaInput = Field(description="The picture the face is taken from.")
    target: MediaInput = Field(description="The picture whose face is replaced.")
    output_format: OutputFormat | None = None


class Outpaint(Params):
    image: MediaInput
    prompt: Prompt
    negative_prompt: Annotated[str, Field(max_length=2000)] | None = None
    top: Annotated[int, Field(ge=0, le=2048)] = 0
    right: Annotated[int, Field(ge=0, le=2048)] = 0
    bottom: Annotated[int, Field(ge=0, le=2048)] = 0
    left: Annotated[int, Field(ge=0, le=2048)] = 0
    seed: Seed | None = None
    output_format: OutputFormat | None = None


PARAMS: dict[Operation, type[Params]] = {
    Operation.image_generate: GenerateImage,
    Operation.image_remove_background: RemoveBackground,
    Operation.image_upscale: Upscale,
    Operation.image_swap_face: SwapFace,
    Operation.image_outpaint: Outpaint,
}
"""Parameter model of each operation the gateway serves."""


ROUTES: dict[Operation, str] = {
    Operation.image_generate: "/v1/images/generate",
    Operation.image_remove_background: "/v1/images/remove-background",
    Operation.image_replace_background: "/v1/images/replace-background",
    Operation.image_upscale: "/v1/images/upscale",
    Operation.image_restore_face: "/v1/images/restore-face",
    Operation.image_remove_object: "/v1/images/remove-object",
    Operation.image_outpaint: "/v1/images/outpaint",
    Operation.image_colorize: "/v1/images/colorize",
    Operation.image_swap_face: "/v1/images/swap-face",
    Operation.image_hairstyle: "/v1/images/hairstyle",
    Operation.image_age: "/v1/images/age",
    Operation.image_transfer_makeup: "/v1/images/transfer-makeup",
    Operation.image_try_on: "/v1/images/try-on",
    Operation.image_lock_identity: "/v1/images/lock-identity",
    Operation.image_replace_identity: "/v1/images/replace-identity",
    Operation.image_instamodel: "/v1/images/instamodel",
    Operation.image_keywords: "/v1/analysis/image-keywords",
    Operation.image_caption: "/v1/analysis/image-caption",
    Operation.image_faces: "/v1/analysis/faces",
    Operation.image_quality: "/v1/analysis/image-quality",
    Operation.video_keywords: "/v1/analysis/video-keywords",
    Operation.video_swap_face: "/v1/videos/swap-face",
    Operation.video_lipsync: "/v1/videos/lipsync",
    Operation.video_generate: "/v1/videos/generate",
    Operation.audio_speech: "/v1/audio/speech",
    Operation.audio_generate: "/v1/audio/generate",
    Operation.audio_clone_voice: "/v1/audio/clone-voice",
}
"""Public POST route of every operation (DESIGN §2.2)."""
