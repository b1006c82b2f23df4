"""The canonical operations: their names, routes and typed parameter models.

A parameter model holds only what describes the work (media, prompt, sizes). Routing fields
(``provider``, ``fallback``), ``callback_url`` and ``metadata`` live on the request envelope,
so adapters never see them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.enums import TextEnum
from app.domain.media import (
    AudioInput,
    ImageInput,
    MediaInput,
    MediaKind,
    VideoInput,
    media_kind,
)


class Operation(TextEnum):
    """Every canonical operation (docs/operations.md). The value is the public name."""

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
NegativePrompt = Annotated[str, Field(max_length=2000)]
Side = Annotated[int, Field(ge=64, le=4096)]
HexColour = Annotated[str, Field(pattern=r"^#(?:[0-9a-fA-F]{3}){1,2}$")]
Palette = Annotated[list[HexColour], Field(min_length=1, max_length=16)]
ProfileId = Annotated[str, Field(min_length=1, max_length=200)]


class Params(BaseModel):
    """Base of every operation's parameters. Unknown fields are refused, never dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    media_fields: ClassVar[dict[str, MediaKind]] = {}
    """The fields typed as a media input (``ImageInput``, ``ImageInput | None``, …) and the
    kind each takes, found once per model from its annotations: a request's media are looked
    up many times a job."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kinds = {name: media_kind(field.annotation) for name, field in cls.model_fields.items()}
        cls.media_fields = {name: kind for name, kind in kinds.items() if kind is not None}

    def media(self) -> dict[str, MediaInput]:
        """The media inputs of this request, by canonical field name."""
        given: dict[str, MediaInput] = {}
        for name in self.media_fields:
            value = getattr(self, name)
            if value is not None:
                given[name] = value
        return given

    def given(self) -> set[str]:
        """Names of the parameters the client actually set."""
        return set(self.model_fields_set)


# -- images -----------------------------------------------------------------------------


class GenerateImage(Params):
    prompt: Prompt
    negative_prompt: NegativePrompt | None = None
    model: Literal["sd1.5", "sdxl", "flux-schnell"] | None = Field(
        default=None, description="Model family; providers offer different subsets."
    )
    quality: Literal["fast", "standard", "high"] | None = Field(
        default=None, description="A hint used to pick the model when `model` is not given."
    )
    width: Side | None = None
    height: Side | None = None
    aspect: Aspect | None = None
    seed: Seed | None = None
    output_format: OutputFormat | None = None
    style_id: str | None = Field(default=None, description="A style from `GET /v1/styles`.")
    language: str | None = Field(
        default=None, min_length=2, max_length=5, description="Language of the prompt."
    )
    steps: Annotated[int, Field(ge=1, le=100)] | None = Field(
        default=None, description="Inference steps (where the provider takes them)."
    )
    guidance_scale: Annotated[float, Field(ge=0, le=20)] | None = Field(
        default=None, description="Prompt adherence (where the provider takes it)."
    )


class RemoveBackground(Params):
    image: ImageInput
    seed: Seed | None = None
    output_format: OutputFormat | None = None


class ReplaceBackground(Params):
    image: ImageInput
    prompt: Prompt = Field(description="The new background, described.")
    negative_prompt: NegativePrompt | None = None
    seed: Seed | None = None


class Upscale(Params):
    image: ImageInput
    scale: Literal[1, 2, 4, 8] | None = Field(
        default=None, description="Upscaling factor; the provider's default when omitted."
    )
    seed: Seed | None = None
    output_format: OutputFormat | None = None


class RestoreFace(Params):
    image: ImageInput


class RemoveObject(Params):
    image: ImageInput
    mask: ImageInput | None = Field(
        default=None, description="White where the object to remove is; black elsewhere."
    )
    prompt: Prompt | None = Field(default=None, description="The object to remove, described.")
    output_format: OutputFormat | None = None

    @model_validator(mode="after")
    def _mask_or_prompt(self) -> RemoveObject:
        if self.mask is None and self.prompt is None:
            raise ValueError("give a mask or a prompt naming the object to remove")
        return self


class Outpaint(Params):
    image: ImageInput
    prompt: Prompt
    negative_prompt: NegativePrompt | None = None
    top: Annotated[int, Field(ge=0, le=2048)] = 0
    right: Annotated[int, Field(ge=0, le=2048)] = 0
    bottom: Annotated[int, Field(ge=0, le=2048)] = 0
    left: Annotated[int, Field(ge=0, le=2048)] = 0
    seed: Seed | None = None
    output_format: OutputFormat | None = None
    language: str | None = Field(
        default=None, min_length=2, max_length=5, description="Language of the prompt."
    )


class Colorize(Params):
    image: ImageInput
    output_format: OutputFormat | None = None


class SwapFace(Params):
    source: ImageInput = Field(description="The picture the face is taken from.")
    target: ImageInput = Field(description="The picture whose face is replaced.")
    enhance_face: bool | None = Field(
        default=None, description="Restore the swapped face's details after the swap."
    )
    upscale: bool | None = None
    restore_weight: Annotated[float, Field(ge=0, le=1)] | None = None
    output_format: OutputFormat | None = None
    scale: Annotated[float, Field(ge=1, le=4)] | None = Field(
        default=None, description="Upscaling factor of the result (1.0 to 4.0)."
    )
    palette: Palette | None = Field(
        default=None, description="Brand colours as hex codes (`#rrggbb`), blended in."
    )
    profile_id: ProfileId | None = Field(
        default=None, description="An identity profile kept at the provider."
    )


class Hairstyle(Params):
    image: ImageInput
    variant: Literal["style", "wig", "extension", "bangs", "volume"] = "style"
    style_id: str | None = Field(default=None, description="A style from `GET /v1/styles`.")


class Age(Params):
    image: ImageInput


class TransferMakeup(Params):
    image: ImageInput = Field(description="The face receiving the makeup.")
    reference: ImageInput = Field(description="The face wearing the look to copy.")


class TryOn(Params):
    person: ImageInput
    garment: ImageInput
    category: Literal["upper_body", "lower_body", "dress", "full_body"] | None = None
    gender: Literal["male", "female"] | None = None
    seed: Seed | None = None
    output_format: OutputFormat | None = None
    width: Side | None = None
    height: Side | None = None
    use_segmentation: bool | None = Field(
        default=None, description="Edit only the garment's region (else the whole picture)."
    )
    tone_correction: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Colour correction strength after editing (0.0 to 1.0)."
    )
    profile_id: ProfileId | None = Field(
        default=None, description="An identity profile kept at the provider."
    )


class LockIdentity(Params):
    face: ImageInput = Field(description="The face whose identity the picture keeps.")
    prompt: Prompt
    negative_prompt: NegativePrompt | None = None
    width: Side | None = None
    height: Side | None = None
    seed: Seed | None = None
    output_format: OutputFormat | None = None
    steps: Annotated[int, Field(ge=1, le=100)] | None = Field(
        default=None, description="Diffusion steps: higher is better and slower."
    )
    guidance_scale: Annotated[float, Field(ge=1, le=20)] | None = Field(
        default=None, description="Classifier-free guidance scale."
    )
    palette: Palette | None = Field(default=None, description="Brand colours as hex codes.")
    profile_id: ProfileId | None = Field(
        default=None, description="An identity profile kept at the provider."
    )


class ReplaceIdentity(Params):
    image: ImageInput = Field(description="The picture whose person is replaced.")
    prompt: Prompt = Field(description="The new person, described.")
    face: ImageInput | None = Field(
        default=None, description="The identity to put into the picture (where supported)."
    )
    seed: Seed | None = None
    output_format: OutputFormat | None = None
    use_segmentation: bool | None = Field(
        default=None, description="Edit only skin and hair, keeping clothing."
    )
    tone_correction: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Colour correction strength after editing (0.0 to 1.0)."
    )
    palette: Palette | None = Field(default=None, description="Brand colours as hex codes.")
    profile_id: ProfileId | None = Field(
        default=None, description="An identity profile kept at the provider."
    )


class Instamodel(Params):
    face: ImageInput
    prompt: Prompt = Field(description="The scene, outfit or style of the shot.")
    negative_prompt: NegativePrompt | None = None
    width: Side | None = None
    height: Side | None = None
    seed: Seed | None = None
    output_format: OutputFormat | None = None
    palette: Palette | None = Field(default=None, description="Brand colours as hex codes.")
    profile_id: ProfileId | None = Field(
        default=None, description="An identity profile kept at the provider."
    )


# -- analysis ---------------------------------------------------------------------------


class ImageKeywords(Params):
    image: ImageInput
    num_keywords: Annotated[int, Field(ge=1, le=50)] | None = None
    threshold: Annotated[float, Field(ge=0, le=1)] | None = None
    lang: str | None = Field(default=None, min_length=2, max_length=5)
    colors: bool | None = None
    num_colors: Annotated[int, Field(ge=1, le=20)] | None = None


class ImageCaption(Params):
    image: ImageInput
    caption_len: Literal["short", "normal", "long"] | None = Field(
        default=None,
        description="Caption length: short (3–6 words), normal (7–12), long (13–20+).",
    )


class Faces(Params):
    image: ImageInput


class ImageQuality(Params):
    image: ImageInput
    model: Literal["stock", "ugc"] = "stock"


class VideoKeywords(Params):
    video: VideoInput
    num_keywords: Annotated[int, Field(ge=1, le=50)] | None = None
    threshold: Annotated[float, Field(ge=0, le=1)] | None = None


# -- video ------------------------------------------------------------------------------


class SwapFaceVideo(Params):
    source: ImageInput = Field(description="The picture the face is taken from.")
    target: VideoInput = Field(description="The video whose face is replaced.")
    enhance_face: bool | None = None


class Lipsync(Params):
    video: VideoInput
    audio: AudioInput
    model: Literal["normal", "fast"] | None = None


class GenerateVideo(Params):
    prompt: Prompt
    image: ImageInput | None = None
    negative_prompt: NegativePrompt | None = Field(
        default=None, description="What the video should avoid."
    )
    duration_s: Annotated[int, Field(ge=1, le=10)] | None = None
    resolution: Literal["480p", "720p"] | None = None
    seed: Seed | None = None


# -- audio ------------------------------------------------------------------------------


class Speech(Params):
    text: Annotated[str, Field(min_length=1, max_length=10000)]
    voice: str = Field(min_length=1, max_length=100, description="From `GET /v1/voices`.")
    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The output file's name at the provider (where it takes one).",
    )


class GenerateAudio(Params):
    prompt: Prompt
    duration_s: Annotated[int, Field(ge=5, le=30)] | None = None
    model: Literal["musicgen-small"] | None = Field(
        default=None, description="Model; the provider's default when omitted."
    )
    seed: Seed | None = None


class CloneVoice(Params):
    text: Annotated[str, Field(min_length=1, max_length=5000)]
    reference_audio: AudioInput
    language: str | None = Field(default=None, min_length=2, max_length=5)
    exaggeration: Annotated[float, Field(ge=0, le=2)] | None = None
    watermark: bool | None = None
    max_new_tokens: Annotated[int, Field(ge=1, le=4096)] | None = Field(
        default=None, description="Most speech tokens to generate."
    )


PARAMS: dict[Operation, type[Params]] = {
    Operation.image_generate: GenerateImage,
    Operation.image_remove_background: RemoveBackground,
    Operation.image_replace_background: ReplaceBackground,
    Operation.image_upscale: Upscale,
    Operation.image_restore_face: RestoreFace,
    Operation.image_remove_object: RemoveObject,
    Operation.image_outpaint: Outpaint,
    Operation.image_colorize: Colorize,
    Operation.image_swap_face: SwapFace,
    Operation.image_hairstyle: Hairstyle,
    Operation.image_age: Age,
    Operation.image_transfer_makeup: TransferMakeup,
    Operation.image_try_on: TryOn,
    Operation.image_lock_identity: LockIdentity,
    Operation.image_replace_identity: ReplaceIdentity,
    Operation.image_instamodel: Instamodel,
    Operation.image_keywords: ImageKeywords,
    Operation.image_caption: ImageCaption,
    Operation.image_faces: Faces,
    Operation.image_quality: ImageQuality,
    Operation.video_keywords: VideoKeywords,
    Operation.video_swap_face: SwapFaceVideo,
    Operation.video_lipsync: Lipsync,
    Operation.video_generate: GenerateVideo,
    Operation.audio_speech: Speech,
    Operation.audio_generate: GenerateAudio,
    Operation.audio_clone_voice: CloneVoice,
}
"""Parameter model of each operation."""


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
"""Public POST route of every operation (docs/operations.md)."""

ANALYSIS_PREFIX = "/v1/analysis/"
DATA_RESULTS = frozenset(op for op, path in ROUTES.items() if path.startswith(ANALYSIS_PREFIX))
"""The operations whose result is data, no file: the analyses, served under one prefix."""
