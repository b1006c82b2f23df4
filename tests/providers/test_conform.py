"""Inputs fitted to each provider's documented limits (``providers/media_limits.py``) before
they are sent: sides, types and bytes; EXIF orientation applied; aspect kept."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import pytest
from PIL import Image

from app.domain.media import ImageInput
from app.domain.operations import Colorize, Hairstyle, Operation, RemoveObject
from app.providers._conform import UnreadablePicture, conform_image, conform_mask, read_conformed
from app.providers.base import Call, Media
from app.providers.media_limits import (
    EVERYPIXEL_PICTURES,
    JPEG,
    PERFECTCORP,
    PIXELAPI,
    PNG,
    WEBP,
    ImageLimits,
)
from tests.utils.media import (
    decode_image,
    lined_up,
    marked_mask,
    marked_photo,
    mask_png,
    noise_png,
    orientation_of,
)
from tests.utils.media_source import DictMedia

ORIENTATION = 0x0112


@functools.lru_cache(maxsize=16)
def photo(width: int, height: int, fmt: str = "JPEG", orientation: int | None = None) -> bytes:
    """A phone-like photo: a gradient with noise, optionally rotated by its EXIF tag."""
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    grain = Image.effect_noise((max(1, width // 8), max(1, height // 8)), 40)
    noise = grain.resize((width, height), Image.Resampling.NEAREST).convert("RGB")
    img = Image.blend(img, noise, 0.3)
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    img.save(out, format=fmt, exif=exif.tobytes(), quality=90)
    return out.getvalue()


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_a_picture_within_the_limits_is_sent_untouched() -> None:
    media = Media(photo(800, 600), JPEG)
    result = conform_image(media, PERFECTCORP["hair-style"])
    assert result.media is media and result.change is None


@pytest.mark.parametrize("slug", ["hair-style", "hair-ext", "hair-bang", "hair-vol", "wig",
                                  "mu-trans-rec", "aging", "text-to-image"])  # fmt: skip
def test_a_phone_photo_fits_a_1024_task_with_its_aspect_kept(slug: str) -> None:
    media = Media(photo(4000, 3000), JPEG)
    result = conform_image(media, PERFECTCORP[slug], "file_x")
    sent = _open(result.media.content)
    assert sent.size == (1024, 768)
    assert (sent.format, result.media.content_type) == ("JPEG", JPEG)
    change = result.change
    assert change is not None and change.input == "file_x"
    assert (change.before.width, change.before.height) == (4000, 3000)
    assert (change.after.width, change.after.height, change.after.bytes) == (
        1024,
        768,
        len(result.media.content),
    )


def test_the_exif_orientation_is_applied_to_the_pixels() -> None:
    media = Media(photo(4000, 3000, orientation=6), JPEG)  # "rotate 90° clockwise to view"
    result = conform_image(media, PERFECTCORP["hair-style"])
    sent = _open(result.media.content)
    assert sent.size == (768, 1024)
    assert sent.getexif().get(ORIENTATION, 1) == 1
    assert result.change is not None and result.change.rotated


def test_a_rotated_photo_within_the_sides_is_still_rotated() -> None:
    result = conform_image(Media(photo(400, 300, orientation=8), JPEG), PERFECTCORP["sod"])
    assert _open(result.media.content).size == (300, 400)


def test_a_type_the_task_does_not_take_is_re_encoded() -> None:
    hair_style = conform_image(Media(photo(300, 200, "PNG"), PNG), PERFECTCORP["hair-style"])
    assert (hair_style.media.content_type, _open(hair_style.media.content).format) == (
        JPEG,
        "JPEG",
    )
    webp = conform_image(Media(photo(300, 200, "WEBP"), "image/webp"), PERFECTCORP["colorize"])
    assert webp.media.content_type == PNG  # lossless where the task takes PNG


def test_a_file_over_the_byte_limit_is_made_smaller() -> None:
    limits = ImageLimits(formats=(JPEG,), cite=PIXELAPI.cite, max_long_side=4096, max_bytes=60_000)
    result = conform_image(Media(photo(1600, 1200), JPEG), limits)
    assert len(result.media.content) <= 60_000
    width, height = _open(result.media.content).size
    assert abs(width / height - 4 / 3) < 0.01


def test_pixelapi_takes_4096_a_side() -> None:
    result = conform_image(Media(photo(5000, 2500), JPEG), PIXELAPI)
    assert _open(result.media.content).size == (4096, 2048)


def test_what_is_not_a_picture_is_refused() -> None:
    with pytest.raises(UnreadablePicture):
        conform_image(Media(b"not a picture", JPEG), PIXELAPI)


def test_every_row_cites_its_line() -> None:
    for slug, row in PERFECTCORP.items():
        assert row.cite.source == "perfectcorp" and row.cite.line, slug
    rows = [*PERFECTCORP.values(), PIXELAPI]
    assert all(row.max_long_side for row in rows) and all(row.max_bytes for row in rows)


def test_everypixels_jpeg_png_analyses_cite_the_lines_that_say_so() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "upstream"
    lines = (docs / "everypixel.txt").read_text(encoding="utf-8").splitlines()
    for endpoint, row in EVERYPIXEL_PICTURES.items():
        assert row.cite.source == "everypixel" and row.cite.line is not None, endpoint
        assert row.cite.words in lines[row.cite.line - 1], endpoint
        assert row.formats == (JPEG, PNG) and row.max_long_side is row.max_bytes is None


def test_a_webp_is_made_a_png_for_a_jpeg_png_analysis() -> None:
    result = conform_image(Media(photo(300, 200, "WEBP"), WEBP), EVERYPIXEL_PICTURES["/v1/faces"])
    sent = _open(result.media.content)
    assert (result.media.content_type, sent.format, sent.size) == (PNG, "PNG", (300, 200))
    jpeg = Media(photo(3000, 2000), JPEG)  # no size is documented: a large JPEG goes as it is
    assert conform_image(jpeg, EVERYPIXEL_PICTURES["/v1/quality"]).media is jpeg


async def test_the_change_is_recorded_on_the_call() -> None:
    ref = ImageInput(file_id="file_big")
    media = DictMedia({"file_big": Media(photo(2000, 1500), JPEG)})
    call = Call("job_1", Operation.image_hairstyle, Hairstyle(image=ref, style_id="1:2"), media)
    sent = await read_conformed(call, ref, PERFECTCORP["hair-ext"])
    assert _open(sent.content).size == (1024, 768)
    assert [c.input for c in call.conformed] == ["file_big"]

    small = ImageInput(file_id="file_small")
    media = DictMedia({"file_small": Media(photo(200, 150), JPEG)})
    call = Call("job_2", Operation.image_colorize, Colorize(image=small), media)
    await read_conformed(call, small, PERFECTCORP["colorize"])
    assert call.conformed == []


# masks --------------------------------------------------------------------------------------------


def test_a_mask_is_scaled_to_its_pictures_sent_size_and_stays_black_and_white() -> None:
    result = conform_mask(Media(mask_png(2400, 1800), PNG), PIXELAPI, (2040, 1530), "file_mask")
    sent = _open(result.media.content)
    assert (sent.size, sent.format, sent.mode) == ((2040, 1530), "PNG", "L")
    assert {value for _, value in sent.getcolors() or []} == {0, 255}
    change = result.change
    assert change is not None and change.input == "file_mask"
    assert (change.before.width, change.after.width, change.after.height) == (2400, 2040, 1530)


def test_a_mask_that_already_has_its_pictures_size_is_sent_untouched() -> None:
    media = Media(mask_png(800, 600), PNG)
    assert conform_mask(media, PIXELAPI, (800, 600)).media is media


def test_a_mask_of_a_type_the_task_does_not_take_is_re_encoded_at_the_pictures_size() -> None:
    out = io.BytesIO()
    _open(mask_png(400, 300)).save(out, format="WEBP", lossless=True)
    result = conform_mask(Media(out.getvalue(), WEBP), PERFECTCORP["obj-removal"], (200, 150))
    sent = _open(result.media.content)
    assert (result.media.content_type, sent.format, sent.size) == (PNG, "PNG", (200, 150))


def test_a_mask_of_another_shape_is_fitted_alone() -> None:
    media = Media(mask_png(600, 600), PNG)
    assert conform_mask(media, PIXELAPI, (2040, 1530)).media is media
    assert conform_mask(media, PIXELAPI, None).media is media  # the picture was unreadable


async def test_a_mask_follows_a_picture_made_smaller_for_the_byte_limit() -> None:
    """A 13 MB 2400×1800 PNG is over PixelAPI's 10 MB: it goes at 2040×1530, its mask too."""
    image, mask = ImageInput(file_id="file_big"), ImageInput(file_id="file_mask")
    media = DictMedia(
        {
            "file_big": Media(noise_png(2400, 1800), PNG),
            "file_mask": Media(mask_png(2400, 1800), PNG),
        }
    )
    params = RemoveObject(image=image, mask=mask)
    call = Call("job_1", Operation.image_remove_object, params, media)
    sent_image = await read_conformed(call, image, PIXELAPI)
    sent_mask = await read_conformed(call, mask, PIXELAPI, mask_of=sent_image)
    size = _open(sent_image.content).size
    assert size != (2400, 1800) and len(sent_image.content) <= 10 * 1024 * 1024
    assert _open(sent_mask.content).size == size
    assert [c.input for c in call.conformed] == ["file_big", "file_mask"]


async def _pair(picture: Media, mask: Media, limits: ImageLimits) -> tuple[Media, Media, Call]:
    """The picture and its mask as an adapter sends them: the picture fitted, then the mask."""
    image, over = ImageInput(file_id="file_photo"), ImageInput(file_id="file_mask")
    media = DictMedia({"file_photo": picture, "file_mask": mask})
    call = Call("job_1", Operation.image_remove_object, RemoveObject(image=image, mask=over), media)
    sent_image = await read_conformed(call, image, limits)
    sent_mask = await read_conformed(call, over, limits, mask_of=sent_image)
    return sent_image, sent_mask, call


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
@pytest.mark.parametrize(("width", "height"), [(400, 300), (301, 300)])
async def test_an_untagged_mask_of_a_turned_photos_stored_shape_is_turned_with_it(
    orientation: int, width: int, height: int
) -> None:
    """A photo stored landscape with an orientation of 5–8 is sent upright, portrait; an
    untagged mask of its stored shape, not of its displayed one, was drawn over the stored
    pixels: it is turned the same way, and the pair lines up. (301×300 is within the 2 % by
    which a mask of the displayed shape would have been stretched onto it unturned.)"""
    photo_ = Media(marked_photo(width, height, orientation), JPEG)
    mask = Media(marked_mask(width, height), PNG)
    sent_image, sent_mask, call = await _pair(photo_, mask, PIXELAPI)
    assert decode_image(sent_image.content).size == (height, width)
    assert lined_up(sent_image.content, sent_mask.content)
    assert orientation_of(sent_image.content) == orientation_of(sent_mask.content) == 1
    assert [(c.input, c.rotated) for c in call.conformed] == [
        ("file_photo", True),
        ("file_mask", True),
    ]


async def test_a_mask_over_a_turned_photos_stored_pixels_follows_it_made_smaller() -> None:
    """Makeup transfer's row (long side ≤ 1024) turns and shrinks a 2400×1800 photo tagged 6
    to 768×1024; its untagged 2400×1800 mask goes turned and at that size."""
    photo_ = Media(marked_photo(2400, 1800, 6), JPEG)
    mask = Media(marked_mask(2400, 1800), PNG)
    sent_image, sent_mask, _ = await _pair(photo_, mask, PERFECTCORP["mu-trans-rec"])
    assert decode_image(sent_image.content).size == (768, 1024)
    assert lined_up(sent_image.content, sent_mask.content)


async def test_a_tagged_mask_of_an_untagged_pictures_stored_shape_is_sent_unturned() -> None:
    """A mask tagged 6 whose stored pixels have the shape of an untagged picture, and whose
    displayed form has not, was drawn over those stored pixels: it goes as stored, the tag
    dropped, rather than turned away from its picture."""
    picture = Media(marked_photo(400, 300), JPEG)
    mask = Media(marked_mask(400, 300, 6), PNG)
    sent_image, sent_mask, call = await _pair(picture, mask, PIXELAPI)
    assert sent_image is picture
    assert lined_up(sent_image.content, sent_mask.content)
    assert orientation_of(sent_mask.content) == 1
    assert [(c.input, c.rotated) for c in call.conformed] == [("file_mask", False)]
