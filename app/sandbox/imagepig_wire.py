"""Image Pig's request bodies as its document defines them, validated by the emulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Language = Literal[
    "ar", "bg", "cs", "da", "de", "el", "es", "et", "fi", "fr", "hu", "id", "it", "ja", "ko",
    "lt", "lv", "nb", "nl", "pl", "pt", "ro", "ru", "sk", "sl", "sv", "tr", "uk", "zh",
]  # fmt: skip
Format = Literal["JPEG", "PNG"]
Proportion = Literal["landscape", "portrait", "square", "wide", "vertical"]
Seed = Annotated[int, Field(ge=0, le=2**64 - 1)]
Side = Annotated[int, Field(ge=0, le=1024)]


def _upscaling_factor(value: int) -> int:
    if value not in (2, 4, 8):
        raise ValueError("upscaling_factor must be one of 2, 4 or 8")
    return value


UpscalingFactor = Annotated[int, AfterValidator(_upscaling_factor)]
"""One of [2, 4, 8], strictly an integer (``Literal`` would let ``2.0`` through)."""

# -- request bodies -------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    storage_days: Annotated[int, Field(ge=0)] = 0


class _Prompted(Body):
    positive_prompt: str | None = None
    prompt: str | None = None
    language: Language | None = None
    format: Format = "JPEG"
    seed: Seed | None = None


class TextBody(_Prompted):
    """``/`` and ``/xl``."""

    negative_prompt: str | None = None


class FluxBody(_Prompted):
    proportion: Proportion = "landscape"


@dataclass(frozen=True)
class ImageRef:
    url: str | None
    data: str | None


def _one_of(url: str | None, data: str | None, prefix: str) -> None:
    if (url is None) == (data is None):
        raise ValueError(f"send exactly one of {prefix}_url and {prefix}_data")
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError(f"{prefix}_url must start with http:// or https://")


class _OneImage(Body):
    image_url: str | None = None
    image_data: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _OneImage:
        _one_of(self.image_url, self.image_data, "image")
        return self

    @property
    def image(self) -> ImageRef:
        return ImageRef(self.image_url, self.image_data)


class CutoutBody(_OneImage):
    seed: Seed | None = None


class UpscaleBody(_OneImage):
    upscaling_factor: UpscalingFactor = 2
    format: Format = "JPEG"
    seed: Seed | None = None


class OutpaintBody(_OneImage):
    positive_prompt: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    language: Language | None = None
    top: Side = 0
    right: Side = 0
    bottom: Side = 0
    left: Side = 0
    format: Format = "JPEG"
    seed: Seed | None = None


class FaceswapBody(Body):
    source_image_url: str | None = None
    source_image_data: str | None = None
    target_image_url: str | None = None
    target_image_data: str | None = None
    format: Format = "JPEG"

    @model_validator(mode="after")
    def _exactly_one_each(self) -> FaceswapBody:
        _one_of(self.source_image_url, self.source_image_data, "source_image")
        _one_of(self.target_image_url, self.target_image_data, "target_image")
        return self

    @property
    def source(self) -> ImageRef:
        return ImageRef(self.source_image_url, self.source_image_data)

    @property
    def target(self) -> ImageRef:
        return ImageRef(self.target_image_url, self.target_image_data)


# -- work -----------------------------------------------------------------------------------
