"""What each provider accepts as an input picture, from its document: the one table.

Every adapter that sends picture bytes reads its row here and sends what
:func:`app.providers._conform.conform_image` made of the input (see there for how). Each row
cites the document line it comes from; ``docs/providers.md`` lists them with where the gateway
and the sandbox enforce them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from app.providers._meaning import Citation, document

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
HEIC = "image/heic"
MB = 1024 * 1024


@dataclass(frozen=True)
class ImageLimits:
    """The pictures one task takes."""

    formats: tuple[str, ...]
    """Accepted media types, the preferred re-encoding first."""
    cite: Citation
    max_long_side: int | None = None
    max_bytes: int | None = None
    """Largest accepted file; the document's "< 10MB" is read as strictly below."""

    def accepts_type(self, content_type: str) -> bool:
        return _canonical(content_type) in self.formats


def _canonical(content_type: str) -> str:
    kind = content_type.split(";")[0].strip().lower()
    return {"image/jpg": JPEG, "image/pjpeg": JPEG}.get(kind, kind)


_perfect = document("perfectcorp")
_pixel = document("pixelapi")

_PERFECT_SMALL = 10 * MB - 1
"""Perfect's "< 10MB"."""


def _row(line: int, words: str, long: int, *formats: str) -> ImageLimits:
    return ImageLimits(
        formats=formats,
        cite=_perfect(line, words),
        max_long_side=long,
        max_bytes=_PERFECT_SMALL,
    )


PERFECTCORP: Final[Mapping[str, ImageLimits]] = {
    "hair-style": _row(80, "AI Hairstyle Generator long side <= 1024", 1024, JPEG),
    "hair-ext": _row(81, "AI Hair Extension long side <= 1024", 1024, JPEG, PNG),
    "hair-bang": _row(82, "AI Hair Bang Generator long side <= 1024", 1024, JPEG, PNG),
    "hair-vol": _row(83, "AI Hair Volume Generator long side <= 1024", 1024, JPEG, PNG),
    "wig": _row(80, "face width >= 128", 1024, JPEG, PNG),
    "aging": _row(80, "face width >= 128", 1024, JPEG, PNG),
    "mu-trans-rec": _row(85, "AI Makeup Transfer 1024x1024", 1024, JPEG, PNG, HEIC),
    "enhance": _row(68, "AI Photo Enhance 4096x4096", 4096, JPEG, PNG, HEIC),
    "obj-removal": _row(70, "AI Object Removal 4096x4096", 4096, JPEG, PNG, HEIC),
    "sod": _row(71, "Background Removal 4096x4096", 4096, JPEG, PNG, HEIC),
    "colorize": _row(74, "AI Photo Colorize 4096x4096", 4096, JPEG, PNG),
    "text-to-image": _row(79, "AI Image Generator 1024x1024", 1024, JPEG, PNG),
}
"""Perfect Corp's "Supported Formats & Dimensions" table, by task. The wig task is not in the
table: it is read as the hairstyle generator's row (face tasks, long side ≤ 1024) but with
PNG; aging, also absent, likewise. Tasks the gateway does not run (lighting, video) are not
rows."""

PIXELAPI: Final = ImageLimits(
    formats=(JPEG, PNG, WEBP),
    cite=_pixel(883, "Maximum resolution is 4096×4096"),
    max_long_side=4096,
    max_bytes=10 * MB,
)
"""PixelAPI's pictures: "JPEG, PNG, and WebP. Maximum file size is 10MB. Maximum resolution is
4096×4096 pixels." (every image endpoint)."""
