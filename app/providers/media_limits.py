"""What each provider accepts as an input, from its document: the one table.

Pictures (:class:`ImageLimits`): every adapter that sends picture bytes reads its row here and
sends what :func:`app.providers._conform.conform_image` made of the input (see there for how).

Audio and video (:class:`AvLimits`): an adapter names its rows by operation and input
(``Adapter.media_limits``); the gateway's intake (``app.jobs.media_rules``) refuses what no
provider of the job's plan takes, or leaves out of the plan the providers that do not take
it, before any credit is reserved; what a provider takes only after conversion
(``converts``) is converted before sending (:mod:`app.providers._conform_av`). An input no
row speaks of is held to the gateway's own limits (:data:`GATEWAY_AV`, ``max_media_bytes``).

Each row cites the document line it comes from; ``docs/providers.md`` lists them with where
the gateway and the sandbox enforce them.

Durations, read literally. Everypixel's video keywording "works best with 5–60 second clips"
and says "the recommended video duration is between 5 and 60 seconds" (90, 256, 258), then
that "longer videos can be processed" (258) and that shorter ones "might not have enough
content": a recommendation, not a limit, so its row sets none and no clip is refused for its
length. Lipsync and video face swap ask for "relatively short videos" (783) and give no
number; ImagePipeline's voice cloning names none. Where a document states one, the row's
``min_duration_s`` / ``max_duration_s`` refuse at intake, on the duration FFmpeg reads
(``app.domain.media_probe``); a file whose duration cannot be read is then refused too (the
careful side: the gateway does not send what it cannot show to be within the limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from app.providers._citations import Citation, document

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
MP4 = "video/mp4"
MOV = "video/quicktime"
WEBM = "video/webm"
AVI = "video/x-msvideo"
MPEG = "video/mpeg"
WAV = "audio/wav"
MP3 = "audio/mpeg"
OGG = "audio/ogg"
FLAC = "audio/flac"
M4A = "audio/mp4"
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
    return _SAME.get(kind, kind)


_SAME = {
    "image/jpg": JPEG,
    "image/pjpeg": JPEG,
    "audio/x-wav": WAV,
    "audio/wave": WAV,
    "audio/mp3": MP3,
    "audio/x-m4a": M4A,
    "video/avi": AVI,
}


@dataclass(frozen=True)
class AvLimits:
    """The audio or video one input of one operation takes at one provider."""

    formats: tuple[str, ...]
    """Media types the provider takes as they are; the first is what conversion makes."""
    cite: Citation | None
    """The document's line; ``None`` for the gateway's own limits (:data:`GATEWAY_AV`)."""
    max_bytes: int | None = None
    """Largest file; ``None``: the gateway's ``max_media_bytes``."""
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    converts: tuple[str, ...] = ()
    """Types the gateway converts to ``formats[0]`` before sending (the provider takes them
    only so)."""

    def takes(self, content_type: str) -> bool:
        """As it is, or after conversion."""
        kind = _canonical(content_type)
        return kind in self.formats or kind in self.converts

    def needs_conversion(self, content_type: str) -> bool:
        return _canonical(content_type) not in self.formats

    def names(self) -> str:
        """The types it takes, for a refusal: ``MP4, MPEG, MOV, AVI``."""
        return ", ".join(_NAMES.get(t, t) for t in dict.fromkeys(self.formats + self.converts))


_NAMES = {
    MP4: "MP4",
    MOV: "MOV",
    WEBM: "WEBM",
    AVI: "AVI",
    MPEG: "MPEG",
    WAV: "WAV",
    MP3: "MP3",
    OGG: "OGG",
    FLAC: "FLAC",
    M4A: "M4A",
}

GATEWAY_AV: Final[Mapping[str, AvLimits]] = {
    "video": AvLimits(formats=(MP4, MOV, WEBM), cite=None),
    "audio": AvLimits(formats=(WAV, MP3, OGG, FLAC, M4A), cite=None),
}
"""What the gateway takes where no document says (by kind), up to ``max_media_bytes``."""


_perfect = document("perfectcorp")
_pixel = document("pixelapi")
_everypixel = document("everypixel")
_imagepipeline = document("imagepipeline")

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
    "mu-trans-rec": _row(85, "AI Makeup Transfer 1024x1024", 1024, JPEG, PNG),
    "enhance": _row(68, "AI Photo Enhance 4096x4096", 4096, JPEG, PNG),
    "obj-removal": _row(70, "AI Object Removal 4096x4096", 4096, JPEG, PNG),
    "sod": _row(71, "Background Removal 4096x4096", 4096, JPEG, PNG),
    "colorize": _row(74, "AI Photo Colorize 4096x4096", 4096, JPEG, PNG),
    "text-to-image": _row(79, "AI Image Generator 1024x1024", 1024, JPEG, PNG),
}
"""Perfect Corp's "Supported Formats & Dimensions" table, by task. The wig task is not in the
table: it is read as the hairstyle generator's row (face tasks, long side ≤ 1024) but with
PNG; aging, also absent, likewise. Tasks the gateway does not run (lighting, video) are not
rows. The table lists HEIC for makeup transfer, enhance and the two removals, but the upload
call's ``content_type`` takes only the values "listed in the enum" (201): "image/jpg"
"image/jpeg" "image/png" for enhance and the removals (2499, 2987, 3228), the same with tiff
and gif for makeup transfer (2259). A type is sent only where both say it is taken (the
careful side): JPEG and PNG. A HEIC input (Pillow cannot read one, so it cannot be
re-encoded) is refused unsent, ``invalid_media``."""

PIXELAPI: Final = ImageLimits(
    formats=(JPEG, PNG, WEBP),
    cite=_pixel(883, "Maximum resolution is 4096×4096"),
    max_long_side=4096,
    max_bytes=10 * MB,
)
"""PixelAPI's pictures: "JPEG, PNG, and WebP. Maximum file size is 10MB. Maximum resolution is
4096×4096 pixels." (every image endpoint)."""

PIXELAPI_UPSCALE: Final = ImageLimits(
    formats=PIXELAPI.formats,
    cite=_pixel(337, "Upscale an image to 4x resolution"),
    max_long_side=4096 // 4,
    max_bytes=PIXELAPI.max_bytes,
)
"""PixelAPI's upscale input. It always makes "4x resolution" (337), and "Maximum resolution is
4096×4096 pixels" (883) is read to hold for what it makes as well as for what it takes (the
careful side; the sandbox keeps the same reading and refuses a larger input): the input's
long side at most 1,024 px. "For upscaling, the input doesn't need to be high-res" (931)."""


def _jpeg_png(line: int, words: str) -> ImageLimits:
    return ImageLimits(formats=(JPEG, PNG), cite=_everypixel(line, words))


EVERYPIXEL_PICTURES: Final[Mapping[str, ImageLimits]] = {
    "/v1/image_captioning": _jpeg_png(324, "An image (JPEG or PNG)."),
    "/v1/faces": _jpeg_png(370, "An image (JPEG or PNG) that may contain one or more human faces"),
    "/v1/quality": _jpeg_png(425, "Supported image formats are JPEG and PNG."),
    "/v1/quality_ugc": _jpeg_png(469, "Supported image formats are JPEG"),
}
"""Everypixel's analyses that name their pictures' types, by endpoint: captioning and faces
"An image (JPEG or PNG)" (324, 370), both quality models "provided either by URL or by file
upload. Supported image formats are JPEG and PNG" (425, 469–470). Another type is re-encoded
as PNG (lossless; the document prefers neither). The document gives no size or byte limit for
pictures ("The system automatically resizes images to 300×300 pixels before analysis", 323: a
recommendation), so none is set. Keywording names no type: it has no row, and its pictures go
as they are."""

EVERYPIXEL_VIDEO_KEYWORDS: Final = AvLimits(
    formats=(MP4, MPEG, MOV, AVI),
    cite=_everypixel(258, "Supported video formats include MP4, MPEG, MOV, and AVI"),
    max_bytes=100_000_000,
)
"""Everypixel's video keywording: "Supported video formats include MP4, MPEG, MOV, and AVI.
The maximum file size for upload is 100 MB." (258; "an upload size limit of 100 MB for video
files on this endpoint", 90). "100 MB" is read on the careful side: 100,000,000 bytes (the
emulator refuses above 100 MiB, the lenient reading, so the gateway's own limit is the one
that bites)."""

IMAGEPIPELINE_VOICE_REFERENCE: Final = AvLimits(
    formats=(WAV,),
    cite=_imagepipeline(413, "Public URL of the reference voice audio (WAV)"),
    converts=(MP3, OGG, FLAC, M4A),
)
"""ImagePipeline's voice cloning: ``reference_voice_url`` is "Public URL of the reference voice
audio (WAV)" (413). Other audio the gateway takes is converted to WAV first."""
