"""Measuring what a job is priced by: the request at submission, the work once done.

A request's :class:`~app.domain.models.Measure` is taken before anything is stored: the text
length, the longest audio or video input (probed from its bytes by FFmpeg through PyAV,
:mod:`app.jobs.probe`, at intake, before any credit is reserved), the
requested duration of generated media, and the largest image input. Media given by URL is not
fetched at submission, so its duration or size stays unknown and the rule's cap stands in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from app.domain.media import MediaKind
from app.domain.models import JobOutput, Measure
from app.domain.operations import Params
from app.jobs.prices.rules import PriceUnit
from app.jobs.probe import duration_s
from app.providers.base import Binding


@dataclass(frozen=True)
class SeenMedia:
    """One media input as the edge saw it: its type, and bytes or size when at hand."""

    content_type: str
    content: bytes | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    """Seconds of audio or video, when the intake probed them already."""
    pointer: str = ""
    """Where the request holds it (``/video/data``, ``/video/file_id``)."""


def measure_request(params: Params, media: Mapping[str, SeenMedia]) -> Measure:
    """The request's measurements; ``media`` holds the inputs the edge has seen, by field."""
    text = _param(params, "text")
    requested = _param(params, "duration_s")
    seconds: float | None = None
    pixels: int | None = None
    for seen in media.values():
        kind = seen.content_type.split("/", 1)[0]
        if kind in (MediaKind.audio, MediaKind.video) and seen.content is not None:
            found = seen.duration_s
            if found is None:
                found = duration_s(seen.content, seen.content_type)
            if found is not None:
                seconds = max(seconds or 0.0, round(found, 3))
        elif kind == MediaKind.image and seen.width and seen.height:
            pixels = max(pixels or 0, seen.width * seen.height)
    return Measure(
        chars=len(text) if isinstance(text, str) else None,
        seconds=seconds,
        requested_seconds=float(requested) if isinstance(requested, int | float) else None,
        pixels=pixels,
    )


def _param(params: Params, name: str) -> object:
    """The field ``name`` of ``params``, ``None`` when its operation has none: read from the
    model's fields, since a missing attribute costs pydantic an exception each time, and
    every request is measured for some field its operation lacks."""
    return vars(params).get(name)


def _exact(value: float) -> Fraction:
    """A measured float as an exact quantity, to the millisecond / the pixel."""
    return Fraction(round(value * 1000), 1000)


def requested_units(
    unit: PriceUnit, measure: Measure, params: Params, binding: Binding
) -> Fraction | None:
    """Units the request can cost at most (``None``: unknown; the rule's cap stands in)."""
    if unit is PriceUnit.job:
        return Fraction(1)
    if unit is PriceUnit.output:
        return None
    if unit is PriceUnit.kchars:
        return Fraction(measure.chars, 1000) if measure.chars is not None else None
    if unit is PriceUnit.second:
        if measure.seconds is not None:
            return _exact(measure.seconds)
        if measure.requested_seconds is not None:
            return _exact(measure.requested_seconds)
        return None
    return _output_megapixels(measure, params, binding)


def _output_megapixels(measure: Measure, params: Params, binding: Binding) -> Fraction | None:
    """The largest output the request can make: its ``width`` × ``height``, or an input
    scaled by ``scale`` (the largest factor the provider allows when not given)."""
    width, height = _param(params, "width"), _param(params, "height")
    if isinstance(width, int) and isinstance(height, int):
        return Fraction(width * height, 1_000_000)
    if measure.pixels is None or "scale" not in binding.parameters:
        return None
    scale = _param(params, "scale")
    if scale is None:
        allowed = [v for v in binding.values.get("scale", ()) if isinstance(v, int | float)]
        if not allowed:
            return None
        scale = max(allowed)
    factor = Fraction(str(scale))
    return Fraction(measure.pixels, 1_000_000) * factor * factor


def done_units(unit: PriceUnit, measure: Measure, output: JobOutput | None) -> Fraction | None:
    """Units of the work done (``None``: nothing to measure; the reserved quantity stands)."""
    artifacts = output.artifacts if output is not None else []
    if unit is PriceUnit.job:
        return Fraction(1)
    if unit is PriceUnit.output:
        return Fraction(max(1, len(artifacts)))
    if unit is PriceUnit.kchars:
        return Fraction(measure.chars, 1000) if measure.chars is not None else None
    if unit is PriceUnit.second:
        if measure.seconds is not None:
            return _exact(measure.seconds)
        durations = [a.duration_s for a in artifacts if a.duration_s is not None]
        return _exact(max(durations)) if durations else None
    sizes = [a.width * a.height for a in artifacts if a.width and a.height]
    return Fraction(sum(sizes), 1_000_000) if sizes else None
