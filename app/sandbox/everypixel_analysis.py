"""Everypixel emulator, the analyses: keywords, colours, captions, faces and quality scores.

Every answer is derived from the picture itself, the way the service sees it (shrunk to
300×300): its orientation, mean brightness, contrast and dominant colours, plus a seed taken
from its bytes, so the same picture always gets the same answer. A picture of one uniform
colour is the emulators' reading of "no face" (and of a blank, low-quality photo).

How the document is read (the adapter keeps the same readings):

- **Keywords.** At most ``num_keywords`` (default 12, "typically around 10-15"; above 50
  capped at 50), best first, then only those scoring ≥ ``threshold``; in ``lang`` (en, ru, es,
  fr, de, pt, it). ``colors=true`` adds ``num_colors`` (default 5) CSS colour names with
  ``rgb``, ``hex`` and ``percentage`` of the picture. Video keywords take ``num_keywords`` and
  ``threshold`` the same way; ``colors`` and ``lang`` are ignored there (not supported).
- **Caption** lengths are the document's: short 3–6 words, normal 7–12, long 13–20+.
- **Faces**: age, score, bbox ``[x_min, y_min, x_max, y_max]`` in the picture's pixels, and an
  age class ``"Age - Child"`` (< 13), ``"Age - Teen"`` (< 20), ``"Age - Young Adult"`` (< 36),
  ``"Age - Adult"`` (< 60), ``"Age - Senior"``. No face: ``{"faces": [], "status": "ok"}``.
- **Quality**: a score in [0, 1]; the ugc model adds ``class`` 1–5, the score's fifth
  (the document's example: 0.595 → class 3).
- Image captioning, faces and quality take "JPEG or PNG" as documented; keywording takes any
  picture Pillow reads.
"""

from __future__ import annotations

import asyncio
import colorsys
import io
import random
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image, ImageStat

from app.sandbox.everypixel_wire import Form, media, picture, video
from app.sandbox.everypixel_words import (
    CSS_COLORS,
    FEATURE_WORDS,
    GENERAL_WORDS,
    LANGUAGES,
    VIDEO_FEATURES,
    VIDEO_KEYWORDS,
)

ANALYSIS_SIDE: Final = 300
"""The document: images are resized to 300×300 before analysis."""
MAX_KEYWORDS: Final = 50
DEFAULT_KEYWORDS: Final = 12
DEFAULT_COLORS: Final = 5
MAX_COLORS: Final = 20
JPEG_PNG: Final = frozenset({"jpeg", "png"})


@dataclass(frozen=True, eq=False)
class Picture:
    width: int
    height: int
    seed: int
    brightness: float
    """Mean luminance, 0–255."""
    contrast: float
    """Mean standard deviation of the RGB channels."""
    hue_name: str
    """Basic name (``red``, ``gray``…) of the mean colour."""
    second_hue: str
    uniform: bool
    small: Image.Image
    """The picture as the service analyses it (at most 300×300, RGB)."""


def _hue_name(rgb: tuple[float, float, float]) -> str:
    hue, saturation, value = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    degrees = hue * 360
    if value < 0.2:
        return "black"
    if saturation < 0.15:
        return "white" if value > 0.85 else "gray"
    if (degrees < 45 or degrees >= 345) and value < 0.6:
        return "brown"
    for limit, name in ((15, "red"), (45, "orange"), (70, "yellow"), (170, "green")):
        if degrees < limit:
            return name
    for limit, name in ((260, "blue"), (300, "purple"), (345, "pink")):
        if degrees < limit:
            return name
    return "red"


def _mean(img: Image.Image) -> tuple[float, float, float]:
    r, g, b = ImageStat.Stat(img).mean[:3]
    return r, g, b


def look(data: bytes, label: str = "Image", formats: frozenset[str] | None = None) -> Picture:
    info = picture(data, label, formats)
    with Image.open(io.BytesIO(data)) as img:
        small = img.convert("RGB")
    small.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE))
    stat = ImageStat.Stat(small)
    r, g, b = stat.mean[:3]
    first = _hue_name((r, g, b))
    half = max(1, small.width // 2)
    left, right = (
        _hue_name(_mean(small.crop(box)))
        for box in ((0, 0, half, small.height), (small.width - half, 0, small.width, small.height))
    )
    second = right if left == first else left
    if second == first:
        second = "white" if first != "white" else "gray"
    return Picture(
        width=info.width,
        height=info.height,
        seed=zlib.crc32(data),
        brightness=0.299 * r + 0.587 * g + 0.114 * b,
        contrast=sum(stat.stddev[:3]) / 3,
        hue_name=first,
        second_hue=second,
        uniform=info.uniform,
        small=small,
    )


def _orientation(width: int, height: int) -> str:
    if width > height * 1.1:
        return "horizontal"
    if height > width * 1.1:
        return "vertical"
    return "square"


def _scored(rng: random.Random, words: list[str]) -> list[tuple[str, float]]:
    """Words with decreasing scores from about 0.98 (50 words reach about 0.05)."""
    score, scored = rng.uniform(0.95, 0.99), []
    for word in words:
        scored.append((word, round(score, 6)))
        score = max(0.01, score - rng.uniform(0.01, 0.027))
    return scored


def _keep(scored: list[tuple[str, float]], count: int, threshold: float | None) -> list[Any]:
    kept = scored[:count]
    if threshold is not None:
        kept = [(w, s) for w, s in kept if s >= threshold]
    return [{"keyword": w, "score": s} for w, s in kept]


def keywords(pic: Picture, lang: str, count: int, threshold: float | None) -> list[Any]:
    features = [_orientation(pic.width, pic.height), pic.hue_name]
    if pic.uniform:
        features += ["blank", "monochrome"]
    elif pic.contrast > 60:
        features.append("contrast")
    if pic.brightness > 170:
        features.append("bright")
    elif pic.brightness < 70:
        features.append("dark")
    rng = random.Random(pic.seed)
    general = list(GENERAL_WORDS)
    rng.shuffle(general)
    concepts = list(dict.fromkeys(features)) + general
    table = FEATURE_WORDS | GENERAL_WORDS
    scored = _scored(rng, [table[c][lang] for c in concepts[:MAX_KEYWORDS]])
    return _keep(scored, count, threshold)


def _distance(one: tuple[int, int, int], other: tuple[int, int, int]) -> int:
    return sum((a - b) ** 2 for a, b in zip(one, other, strict=True))


def colors(pic: Picture, count: int) -> list[Any]:
    quantized = pic.small.quantize(colors=count, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    counts = sorted(quantized.getcolors(count) or [], reverse=True)
    total = sum(n for n, _ in counts) or 1
    found = []
    for n, index in counts:
        assert isinstance(index, int)  # a "P" picture's colours are palette indices
        rgb: tuple[int, int, int] = (
            palette[3 * index],
            palette[3 * index + 1],
            palette[3 * index + 2],
        )
        name = min(CSS_COLORS, key=lambda c: _distance(CSS_COLORS[c], rgb))
        found.append(
            {
                "name": name,
                "rgb": list(rgb),
                "hex": "#{:02x}{:02x}{:02x}".format(*rgb),
                "percentage": round(100 * n / total, 2),
            }
        )
    return found


def caption(pic: Picture, length: str) -> str:
    light = "bright" if pic.brightness > 150 else "dark" if pic.brightness < 80 else "soft"
    frame = _orientation(pic.width, pic.height)
    if pic.uniform:
        words = f"a plain {pic.hue_name} background"
        middle = "with no people or objects in it"
        tail = f"shown in a {frame} frame with a smooth even surface"
    else:
        words = f"a {light} {pic.hue_name} abstract background"
        middle = f"with a {pic.second_hue} gradient across it"
        tail = f"in a {frame} frame with plenty of empty copy space"
    if length == "short":
        return words
    if length == "normal":
        return f"{words} {middle}"
    return f"{words} {middle}, {tail}"


def _age_class(age: float) -> str:
    for limit, name in ((13, "Child"), (20, "Teen"), (36, "Young Adult"), (60, "Adult")):
        if age < limit:
            return f"Age - {name}"
    return "Age - Senior"


def faces(pic: Picture) -> list[Any]:
    if pic.uniform:
        return []
    rng = random.Random(pic.seed)
    found = []
    for _ in range(1 + pic.seed % 3):
        side = min(pic.width, pic.height) * rng.uniform(0.2, 0.35)
        x, y = rng.uniform(0, pic.width - side), rng.uniform(0, pic.height - side)
        age = rng.uniform(3, 75)
        found.append(
            {
                "age": age,
                "score": rng.uniform(0.93, 0.99999),
                "bbox": [x, y, x + side, y + side],
                "class": _age_class(age),
            }
        )
    return found


def quality(pic: Picture, ugc: bool) -> dict[str, Any]:
    rng = random.Random(pic.seed ^ ugc)
    if pic.uniform:
        score = rng.uniform(0.01, 0.05)
    else:
        contrast = min(1.0, pic.contrast / 60)
        exposure = 1 - abs(pic.brightness - 128) / 128
        resolution = min(1.0, min(pic.width, pic.height) / ANALYSIS_SIDE)
        weights = (0.4, 0.4, 0.2) if ugc else (0.5, 0.3, 0.2)
        blend = weights[0] * contrast + weights[1] * exposure + weights[2] * resolution
        score = 0.05 + 0.9 * blend * rng.uniform(0.9, 1.0)
    if not ugc:
        return {"score": score}
    return {"score": score, "class": min(5, 1 + int(score * 5))}


def video_keywords(data: bytes, count: int, threshold: float | None) -> list[Any]:
    info = video(data, "Video")
    rng = random.Random(info.seed)
    orientation = _orientation(info.width, info.height).capitalize()
    features = [orientation] + (["Slow motion"] if info.duration_s > 60 else [])
    general = [w for w in VIDEO_KEYWORDS if w not in VIDEO_FEATURES]
    rng.shuffle(general)
    return _keep(_scored(rng, (features + general)[:MAX_KEYWORDS]), count, threshold)


# the endpoints -----------------------------------------------------------------------------------


async def _picture(form: Form, formats: frozenset[str] | None = None) -> Picture:
    data = await media(form, "data", "url", "Image")
    return await asyncio.to_thread(look, data, "Image", formats)


async def _keywords(form: Form) -> dict[str, Any]:
    count = form.integer("num_keywords", 1, MAX_KEYWORDS) or DEFAULT_KEYWORDS
    threshold = form.fraction("threshold")
    lang = form.choice("lang", LANGUAGES, "en")
    with_colors = form.flag("colors")
    color_count = form.integer("num_colors", 1, MAX_COLORS) or DEFAULT_COLORS
    pic = await _picture(form)
    body: dict[str, Any] = {"keywords": keywords(pic, lang, count, threshold)}
    if with_colors:
        body["colors"] = colors(pic, color_count)
    return body | {"status": "ok"}


async def _video_keywords(form: Form) -> dict[str, Any]:
    count = form.integer("num_keywords", 1, MAX_KEYWORDS) or DEFAULT_KEYWORDS
    threshold = form.fraction("threshold")
    data = await media(form, "data", "url", "Video")
    found = await asyncio.to_thread(video_keywords, data, count, threshold)
    return {"keywords": found, "status": "ok"}


async def _caption(form: Form) -> dict[str, Any]:
    length = form.choice("caption_len", ("short", "normal", "long"), "normal")
    pic = await _picture(form, JPEG_PNG)
    return {"result": {"caption": caption(pic, length)}, "status": True}


async def _faces(form: Form) -> dict[str, Any]:
    pic = await _picture(form, JPEG_PNG)
    return {"faces": faces(pic), "status": "ok"}


async def _quality(form: Form) -> dict[str, Any]:
    pic = await _picture(form, JPEG_PNG)
    return {"quality": quality(pic, ugc=False), "status": "ok"}


async def _quality_ugc(form: Form) -> dict[str, Any]:
    pic = await _picture(form, JPEG_PNG)
    return {"quality": quality(pic, ugc=True), "status": "ok"}


ANALYSES: Final[dict[str, Callable[[Form], Awaitable[dict[str, Any]]]]] = {
    "keywords": _keywords,
    "video_keywords": _video_keywords,
    "image_captioning": _caption,
    "faces": _faces,
    "quality": _quality,
    "quality_ugc": _quality_ugc,
}
"""Each synchronous endpoint (``/v1/<name>``): its parameters read, its answer computed."""
