"""Audio and video at intake: held to what each provider of the plan takes, before any credit
is reserved.

Each adapter names, by operation and input, the audio or video its provider's document lets
through (``Adapter.media_limits``, rows of :mod:`app.providers.media_limits`): types (as they
are, or after the gateway converts them), bytes and durations. An input no row speaks of is
held to the gateway's own (``GATEWAY_AV``: MP4, MOV, WEBM; WAV, MP3, OGG, FLAC, M4A; up to
``max_media_bytes``).

At submission, every audio or video input whose bytes the gateway has (inline ``data``, an
uploaded ``file_id``) is checked against each provider of the job's plan:

- a provider the client chose (``provider``) that does not take it: the request is refused,
  ``invalid_media`` (422) for a type or a duration, ``media_too_large`` (413) for bytes, with
  the input's pointer;
- otherwise the providers that do not take it leave the plan, and the job goes to the first
  one that does; when none does, the first one's refusal is the answer.

A client's URL is not fetched at submission: the adapter that reads it does so under the
row's byte limit (the runner's ``prefetch``), one that hands the URL on leaves it to the
upstream. An operation's body limit follows the largest input any provider takes
(:func:`field_byte_limits`), so a 100 MB video reaches Everypixel's video keywording inline
while every other input, and ``POST /v1/files``, keep the media limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.domain.errors import ErrorCode, InvalidRequest
from app.domain.operations import Operation
from app.jobs.prices.measure import SeenMedia
from app.providers.base import Adapter
from app.providers.media_limits import GATEWAY_AV, AvLimits


@dataclass(frozen=True)
class AvSeen:
    """One audio or video input as the intake saw it."""

    pointer: str
    kind: str
    """``audio`` or ``video``."""
    content_type: str
    size: int
    duration_s: float | None


def av_seen(seen: Mapping[str, SeenMedia]) -> dict[str, AvSeen]:
    """The audio and video among the inputs the intake saw with their bytes."""
    found: dict[str, AvSeen] = {}
    for name, media in seen.items():
        kind = media.content_type.split("/", 1)[0]
        if kind in ("audio", "video") and media.content is not None:
            size = len(media.content)
            found[name] = AvSeen(media.pointer, kind, media.content_type, size, media.duration_s)
    return found


def row(adapter: Adapter | type[Adapter], operation: Operation, name: str, kind: str) -> AvLimits:
    """What ``adapter`` takes as input ``name`` of ``operation`` (of ``kind``)."""
    return adapter.media_limits.get(operation, {}).get(name) or GATEWAY_AV[kind]


def refusal(
    provider: str, limits: AvLimits, seen: AvSeen, default_max: int
) -> InvalidRequest | None:
    """Why ``provider`` does not take the input, or None."""
    if not limits.takes(seen.content_type):
        return InvalidRequest(
            f"{provider} does not take {seen.content_type} here; it takes {limits.names()}",
            code=ErrorCode.invalid_media,
            pointer=seen.pointer,
        )
    most = limits.max_bytes or default_max
    if seen.size > most:
        return InvalidRequest(
            f"{provider} takes at most {most} bytes here; this is {seen.size}",
            code=ErrorCode.media_too_large,
            pointer=seen.pointer,
            status=413,
        )
    low, high = limits.min_duration_s, limits.max_duration_s
    if low is None and high is None:
        return None
    if seen.duration_s is None:
        return InvalidRequest(
            f"the length of this {seen.content_type} could not be read; {provider} takes "
            f"{_span(low, high)}",
            code=ErrorCode.invalid_media,
            pointer=seen.pointer,
        )
    if (low is not None and seen.duration_s < low) or (high is not None and seen.duration_s > high):
        return InvalidRequest(
            f"{provider} takes {_span(low, high)}; this lasts {seen.duration_s:g} s",
            code=ErrorCode.invalid_media,
            pointer=seen.pointer,
        )
    return None


def _span(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low:g} to {high:g} s"
    return f"at least {low:g} s" if low is not None else f"at most {high:g} s"


def fit_plan(
    adapters: Mapping[str, Adapter],
    plan: list[str],
    pinned: bool,
    operation: Operation,
    seen: Mapping[str, AvSeen],
    default_max: int,
) -> list[str]:
    """The plan without the providers that do not take the inputs ``seen`` (by input name);
    raises the refusal when the chosen provider, or every one, does not take them."""
    if not seen:
        return plan
    kept: list[str] = []
    first: InvalidRequest | None = None
    for index, provider in enumerate(plan):
        refused: InvalidRequest | None = None
        for name, media in seen.items():
            limits = row(adapters[provider], operation, name, media.kind)
            refused = refusal(provider, limits, media, default_max)
            if refused is not None:
                break
        if refused is None:
            kept.append(provider)
        elif index == 0 and pinned:
            raise refused
        elif index == 0:
            first = refused
    if not kept:
        assert first is not None
        raise first
    return kept


def field_byte_limits(
    adapters: Iterable[type[Adapter] | Adapter], default_max: int
) -> dict[Operation, dict[str, int]]:
    """Per operation, the most bytes each audio or video input may have at any provider
    (only where that is more than ``default_max``)."""
    found: dict[Operation, dict[str, int]] = {}
    for adapter in adapters:
        for operation, rows in adapter.media_limits.items():
            if operation not in adapter.bindings:
                continue
            for name, limits in rows.items():
                most = limits.max_bytes or default_max
                if most > max(default_max, found.get(operation, {}).get(name, 0)):
                    found.setdefault(operation, {})[name] = most
    return found
