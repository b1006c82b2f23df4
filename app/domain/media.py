"""Media inputs as clients send them and as jobs keep them."""

from __future__ import annotations

import types
import typing
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MediaKind(StrEnum):
    image = "image"
    video = "video"
    audio = "audio"


class MediaInput(BaseModel):
    """Exactly one of ``url``, ``data`` (base64), ``file_id`` (from ``POST /v1/files``) or
    ``artifact_id`` (an output of one of the tenant's earlier jobs).

    Jobs never keep ``data``: the API stores the decoded bytes as a file at submit time and
    replaces it by ``file_id``, so records stay small and base64 is never echoed back.
    Subclasses name the kind of media a field expects; the bytes are checked against it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[MediaKind] = MediaKind.image

    url: str | None = Field(default=None, max_length=2048, examples=["https://example.com/a.png"])
    data: str | None = Field(
        default=None,
        description="Base64-encoded bytes (≤ 10 MB decoded, the media limit, unless the "
        "provider's document lets the input be larger: Everypixel's video keywording, 100 MB).",
    )
    file_id: str | None = Field(default=None, pattern=r"^file_[0-9a-zA-Z]+$")
    artifact_id: str | None = Field(
        default=None,
        pattern=r"^art_[0-9a-zA-Z]+$",
        description="An artifact of one of your earlier jobs (`output.artifacts[].id`), used "
        "as it is; a provider that still holds it takes it without a new upload.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> MediaInput:
        names = ("url", "data", "file_id", "artifact_id")
        given = [n for n in names if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of url, data, file_id or artifact_id")
        return self  # a url's scheme and address are checked by app.safe_urls


class ImageInput(MediaInput):
    """A PNG, JPEG or WEBP image: ``url``, base64 ``data`` or an uploaded ``file_id``."""

    kind: ClassVar[MediaKind] = MediaKind.image


class VideoInput(MediaInput):
    """An MP4, MOV or WEBM video (where the provider's document says so, its own list: MP4, MPEG,
    MOV or AVI for Everypixel's video keywording): ``url``, base64 ``data`` or ``file_id``."""

    kind: ClassVar[MediaKind] = MediaKind.video


class AudioInput(MediaInput):
    """A WAV, MP3, OGG, FLAC or M4A recording (converted to WAV where the provider takes only
    that: ImagePipeline's voice cloning): ``url``, base64 ``data`` or ``file_id``."""

    kind: ClassVar[MediaKind] = MediaKind.audio


def media_kind(annotation: Any) -> MediaKind | None:
    """The media kind of a field typed ``ImageInput`` or ``ImageInput | None`` (and the
    other kinds); ``None`` for a field of any other type."""
    if isinstance(annotation, type) and issubclass(annotation, MediaInput):
        return annotation.kind
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            kind = media_kind(member)
            if kind is not None:
                return kind
    return None
