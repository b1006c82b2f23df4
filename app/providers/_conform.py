"""Fitting an input picture to what the chosen provider accepts, before it is sent.

:func:`conform_image` leaves a picture alone when its type, sides and bytes are within the
provider's row of :mod:`app.providers.media_limits` and it carries no EXIF rotation. Otherwise
it applies the EXIF orientation to the pixels, scales the picture down (aspect kept, Lanczos)
until its long side fits, and re-encodes it in its own type when accepted, else in the row's
preferred type; a file still too large is encoded again at lower JPEG/WebP quality, then at
smaller sizes. :func:`read_conformed` does it for an adapter and records the change on the
call, so the attempt shows what was sent.

A mask must have the pixel size of the picture it belongs to (PixelAPI "Same dimensions as
source", Perfect Corp "the exact same width and hight with the input image"), so it is fitted
after that picture, to the size the picture is sent at (:func:`conform_mask`): a mask of the
picture's shape is scaled with nearest-neighbour, so a black-and-white mask stays black and
white, and re-encoded by the same type rules, a grey mask staying grey. A mask of another shape
cannot be laid on the picture: it is fitted alone, as any input, and the provider judges it.

Where a mask lies when a picture carries an EXIF orientation. The documents say only that the
mask has its picture's width and height, not whether the orientation is applied first; the
picture is always sent upright (its orientation applied to the pixels, the tag dropped), so the
mask must be sent turned to match. The reading taken: a mask is drawn over the picture as it
is displayed, each of the two with its own orientation applied. That is how browsers show a
picture (CSS ``image-orientation: from-image``, the default), so what a mask painted over it in
a web page lines up with, and how common imaging tools load one before masking it (OpenCV's
``imread``, diffusers' ``load_image``). A mask that has the shape of the picture's stored
pixels and not of the picture as displayed (an untagged landscape mask over a photo stored
landscape with orientation 6, or a mask tagged 6 over an untagged picture of its stored
shape) can only have been drawn over the stored pixels: it is turned by the picture's
orientation instead, its own tag ignored, and the pair still lines up. Where the shapes cannot
tell (a square picture, a half turn, a mirror), the displayed reading is taken.
"""

from __future__ import annotations

import asyncio
import io
import math
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from app.domain.media import MediaInput
from app.domain.models import ConformedInput, MediaShape
from app.providers.base import AsGiven, Call, Media
from app.providers.media_limits import JPEG, PNG, WEBP, ImageLimits

_PIL_FORMATS = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP"}
_QUALITIES = (92, 85, 75, 65)
_SHRINK = 0.85
_ORIENTATION_TAG = 0x0112
_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""What each EXIF orientation does to the stored pixels to show them upright (as Pillow's
``ImageOps.exif_transpose``); another value turns nothing."""
_TURNED = (5, 6, 7, 8)
"""EXIF orientations that swap width and height."""
_SAME_SHAPE = 0.02
"""How far a mask's aspect ratio may be from its picture's (the picture's fitting rounds its
sides) for the mask to be scaled onto it."""
_MAX_PIXELS = 100_000_000
"""Larger pictures are refused before decoding (a decompression bomb, not a photo)."""


class UnreadablePicture(ValueError):
    """The input is not a picture Pillow can read."""


@dataclass(frozen=True)
class Conformed:
    media: Media
    change: ConformedInput | None


def _shape(width: int, height: int, content_type: str, size: int) -> MediaShape:
    return MediaShape(width=width, height=height, content_type=content_type, bytes=size)


def _encode(image: Image.Image, content_type: str, quality: int, grey: bool = False) -> bytes:
    """``grey``: a one-channel picture (a mask) stays one channel where the type allows."""
    out = io.BytesIO()
    fmt = _PIL_FORMATS[content_type]
    if grey and fmt in ("JPEG", "PNG") and image.mode in ("1", "L"):
        if fmt == "JPEG":
            image.convert("L").save(out, format=fmt, quality=quality, optimize=True)
        else:
            image.save(out, format=fmt, optimize=True)
    elif fmt == "JPEG":
        image.convert("RGB").save(out, format=fmt, quality=quality, optimize=True)
    elif fmt == "WEBP":
        image.save(out, format=fmt, quality=quality)
    else:
        mode = "RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB"
        image.convert(mode).save(out, format=fmt, optimize=True)
    return out.getvalue()


def _target_type(current: str, limits: ImageLimits) -> str:
    """The picture's own type when accepted, else PNG (lossless) when accepted, else the
    row's first type."""
    if current in limits.formats and current in _PIL_FORMATS:
        return current
    if PNG in limits.formats:
        return PNG
    for candidate in limits.formats:
        if candidate in _PIL_FORMATS:
            return candidate
    return JPEG


def _header(opened: Image.Image, media: Media) -> tuple[object, str, MediaShape]:
    """An opened picture's EXIF orientation tag, its type and its shape as given, read from its
    header; a picture of more than ``_MAX_PIXELS`` is refused before anything is decoded."""
    if opened.width * opened.height > _MAX_PIXELS:
        raise UnreadablePicture(f"{opened.width}×{opened.height} is too many pixels")
    orientation: object = opened.getexif().get(_ORIENTATION_TAG, 1)
    current = Image.MIME.get(opened.format or "", media.content_type)
    return orientation, current, _shape(opened.width, opened.height, current, len(media.content))


def _turn(orientation: object) -> int:
    """The orientation a tag turns the pixels by: 1 (none) for a tag outside 2–8."""
    return orientation if isinstance(orientation, int) and orientation in _TRANSPOSES else 1


def _turned(opened: Image.Image, turn: int) -> Image.Image:
    """The opened picture's pixels, decoded, turned as orientation ``turn`` says."""
    opened.load()
    method = _TRANSPOSES.get(turn)
    return opened.transpose(method) if method is not None else opened.copy()


def conform_image(media: Media, limits: ImageLimits, name: str = "input") -> Conformed:
    """``media`` fitted to ``limits`` (unchanged when it already fits); raises
    :class:`UnreadablePicture` when it is not a picture."""
    try:
        with Image.open(io.BytesIO(media.content)) as opened:
            orientation, current, before = _header(opened, media)
            given = AsGiven(opened.width, opened.height, _turn(orientation))
            long_side = max(opened.width, opened.height)
            fits = (
                limits.accepts_type(current)
                and (limits.max_long_side is None or long_side <= limits.max_long_side)
                and (limits.max_bytes is None or len(media.content) <= limits.max_bytes)
                and orientation in (1, None)
            )
            if fits:
                return Conformed(media, None)
            if limits.max_long_side is not None and long_side > limits.max_long_side:
                # JPEG decodes at 1/2, 1/4 or 1/8 scale, never below the size to reach
                scale = limits.max_long_side / long_side
                opened.draft("RGB", (int(opened.width * scale), int(opened.height * scale)))
            image = _turned(opened, given.orientation)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise UnreadablePicture(str(exc)) from exc
    target = _target_type(current, limits)
    if limits.max_long_side is not None and max(image.size) > limits.max_long_side:
        image.thumbnail((limits.max_long_side, limits.max_long_side), Image.Resampling.LANCZOS)
    content = b""
    while True:
        for quality in _QUALITIES:
            content = _encode(image, target, quality)
            if limits.max_bytes is None or len(content) <= limits.max_bytes:
                break
            if target == PNG:
                break
        if limits.max_bytes is None or len(content) <= limits.max_bytes or min(image.size) < 64:
            break
        size = (max(1, int(image.width * _SHRINK)), max(1, int(image.height * _SHRINK)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    after = _shape(image.width, image.height, target, len(content))
    rotated = given.orientation != 1
    change = ConformedInput(input=name, before=before, after=after, rotated=rotated)
    return Conformed(Media(content, target, given=given), change)


def picture_size(content: bytes) -> tuple[int, int] | None:
    """Width and height of a picture's pixels as stored (what a provider reads), from its
    header; ``None`` when Pillow cannot read it."""
    try:
        with Image.open(io.BytesIO(content)) as opened:
            return opened.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None


def _aspect_gap(mask: tuple[int, int], picture: tuple[int, int]) -> float:
    """How far the mask's aspect ratio is from the picture's, relatively (infinite for an
    empty side); within :data:`_SAME_SHAPE` they are of one shape."""
    (mw, mh), (pw, ph) = mask, picture
    if min(mw, mh, pw, ph) < 1:
        return math.inf
    return abs(mw * ph - mh * pw) / (mh * pw)


def _swapped(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """A size as shown after ``orientation``."""
    return (size[1], size[0]) if orientation in _TURNED else size


def conform_mask(
    media: Media,
    limits: ImageLimits,
    size: tuple[int, int] | None,
    name: str = "mask",
    picture: AsGiven | None = None,
) -> Conformed:
    """A mask fitted to ``limits`` and laid on its picture as sent: ``size`` is the pixel size
    the picture is sent at, ``picture`` what it was as given when the gateway fitted it (by
    default it is sent as given, at ``size``).

    The mask is read over the picture as displayed (its own EXIF orientation applied), or,
    when its shape is closer to the picture's stored pixels than to the picture displayed,
    over those stored pixels (the picture's orientation applied to it, its own tag ignored):
    the module's docstring says why. A mask of one of those shapes is turned so, scaled to
    ``size`` with nearest-neighbour and encoded in its own type when accepted, else the row's
    preferred one (:func:`conform_image`'s rule); it is left unchanged when it already fits.
    Without a size (the picture could not be read) or with another shape, it is fitted alone
    by :func:`conform_image`. Raises :class:`UnreadablePicture` when it is not a picture.
    """
    if size is None:
        return conform_image(media, limits, name)
    given = picture or AsGiven(size[0], size[1])
    stored = (given.width, given.height)
    shown = _swapped(stored, given.orientation)
    try:
        with Image.open(io.BytesIO(media.content)) as opened:
            orientation, current, before = _header(opened, media)
            own = _turn(orientation)
            over_shown = _aspect_gap(_swapped(opened.size, own), shown)
            over_stored = _aspect_gap(opened.size, stored)
            if min(over_shown, over_stored) > _SAME_SHAPE:
                return conform_image(media, limits, name)
            turn = own if over_shown <= over_stored else given.orientation
            fits = (
                limits.accepts_type(current)
                and opened.size == size
                and (limits.max_bytes is None or len(media.content) <= limits.max_bytes)
                and orientation in (1, None)
                and turn == 1
            )
            if fits:
                return Conformed(media, None)
            image = _turned(opened, turn)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise UnreadablePicture(str(exc)) from exc
    if image.size != size:
        image = image.resize(size, Image.Resampling.NEAREST)
    target = _target_type(current, limits)
    content = b""
    for quality in _QUALITIES:
        content = _encode(image, target, quality, grey=True)
        if limits.max_bytes is None or len(content) <= limits.max_bytes or target == PNG:
            break
    after = _shape(image.width, image.height, target, len(content))
    change = ConformedInput(input=name, before=before, after=after, rotated=turn != 1)
    return Conformed(Media(content, target), change)


def _fit(media: Media, limits: ImageLimits, name: str, over: Media | None) -> Conformed:
    if over is None:
        return conform_image(media, limits, name)
    return conform_mask(media, limits, picture_size(over.content), name, over.given)


async def read_conformed(
    call: Call, ref: MediaInput, limits: ImageLimits, mask_of: Media | None = None
) -> Media:
    """The input's bytes fitted to ``limits``, the change recorded on ``call.conformed``.

    ``mask_of``: ``ref`` is a mask over that picture, as it is sent (fitted first); the mask is
    fitted to its pixel size too (:func:`conform_mask`).

    A picture Pillow cannot read is sent as it is when its declared type is accepted (the
    provider says what it makes of it); otherwise :class:`UnreadablePicture` is raised.
    """
    media = await call.media.read(ref)
    name = ref.file_id or ref.artifact_id or ref.url or "input"
    try:
        result = await asyncio.to_thread(_fit, media, limits, name, mask_of)
    except UnreadablePicture:
        if limits.accepts_type(media.content_type):
            return media
        raise
    if result.change is not None:
        call.conformed.append(result.change)
    return result.media
