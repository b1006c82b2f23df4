"""Price rules: what one (operation, provider) costs, by the unit.

A rule bills ``rate`` gateway credits per ``unit``:

==============  ============================================================================
``job``         flat: one unit per job
``output``      each output file (image, variant); a result that is data only counts one
``second``      seconds of the job's media: the longest audio or video input, probed at
                submission; for generation (no such input) the output's duration
``1k_chars``    1,000 characters of text to speak (``text``)
``megapixel``   million pixels of output images (width × height / 1,000,000, summed)
==============  ============================================================================

**Rounding.** Quantities are exact (2,500 characters are 2.5 units; 12.04 s of audio are 12.04
units, measured to the millisecond); the amount is ``ceil(quantity × rate)``, rounded up to a
whole credit once per job. A rate may be a decimal (``0.25``) or a fraction (``1/3``);
arithmetic is exact (:class:`fractions.Fraction`), so ``0.1 × 30`` is 3, never 4. So a TTS
text of 2,500 characters at 4 credits per 1,000 costs ``ceil(2.5 × 4)`` = 10 credits, and at
3 per 1,000 ``ceil(7.5)`` = 8.

**Reserve, then settle.** Submission reserves the most the request can cost: the quantity the
request states or its media shows, else the rule's ``cap`` (a URL input not read yet, an
output size not known yet). When the job ends, the quantity is measured again on what was
done (outputs, their duration and size) and the actual amount is charged; the rest of the
hold is refunded in the same script. The cap also bounds what one job is billed, so the
settled amount never exceeds the reserved one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from functools import cached_property, lru_cache
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from app.store.credits import Pricing

MAX_RATE = Fraction(1_000_000)


class PriceUnit(StrEnum):
    job = "job"
    output = "output"
    second = "second"
    kchars = "1k_chars"
    megapixel = "megapixel"


DEFAULT_CAPS: dict[PriceUnit, int] = {
    PriceUnit.job: 1,
    PriceUnit.output: 1,
    PriceUnit.second: 600,
    PriceUnit.kchars: 10,
    PriceUnit.megapixel: 68,
}
"""The quantity assumed, and billed at most, when a rule sets no ``cap``: one output, ten
minutes of media, 10,000 characters (the longest text a request takes), 68 megapixels (an
8,192-pixel square, the largest upscale output a provider documents)."""


def parse_rate(value: object) -> Fraction:
    """A rate from ``4``, ``0.25``, ``"0.25"`` or ``"1/3"``: exact, at least 0, at most 10⁶."""
    if isinstance(value, str):
        return _text_rate(value)
    if isinstance(value, Fraction):
        return _bounded(value)
    if isinstance(value, bool):
        raise ValueError("a rate is a number")
    if isinstance(value, int | float):
        return _text_rate(str(value))
    raise ValueError("a rate is a number, or a string such as '0.25' or '1/3'")


@lru_cache(maxsize=1024)
def _text_rate(text: str) -> Fraction:
    """Parsed and checked once per text: every job that ends reads its rate back from the
    string kept on it, and few rates are in use. A fraction cannot change, so one may be
    shared; a text refused is not kept."""
    try:
        rate = Fraction(text.strip())
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"{text!r} is not a number or fraction") from exc
    return _bounded(rate)


def _bounded(rate: Fraction) -> Fraction:
    if rate < 0 or rate > MAX_RATE:
        raise ValueError(f"a rate is between 0 and {MAX_RATE} credits per unit")
    return rate


def render(value: Fraction) -> str:
    """A decimal when it has one of at most six places (``0.25``, ``12``), else ``n/d``."""
    if value.denominator == 1:
        return str(value.numerator)
    scaled = value * 10**6
    if scaled.denominator == 1:
        return f"{float(value):.6f}".rstrip("0").rstrip(".")
    return f"{value.numerator}/{value.denominator}"


Rate = Annotated[
    Fraction,
    BeforeValidator(parse_rate),
    PlainSerializer(render, return_type=str),
    Field(
        description="Credits per unit: a decimal (`0.25`) or a fraction (`1/3`).",
        json_schema_extra={"type": "string", "examples": ["5", "0.25", "1/3"]},
    ),
]


class PriceRule(BaseModel):
    """``rate`` credits per ``unit``, up to ``cap`` units a job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: PriceUnit = PriceUnit.job
    rate: Rate
    cap: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Units assumed when the request does not tell, and billed at most; "
        "the unit's default when absent.",
    )

    @classmethod
    def flat(cls, credits: int) -> PriceRule:
        return cls(unit=PriceUnit.job, rate=Fraction(credits))

    @property
    def max_units(self) -> Fraction:
        return Fraction(self.cap if self.cap is not None else DEFAULT_CAPS[self.unit])

    def quote(self, quantity: Fraction | None) -> Quote:
        """The amount for ``quantity`` units (the cap when unknown), rounded up."""
        return _quote(self, quantity)


@lru_cache(maxsize=4096, typed=True)
def _quote(rule: PriceRule, quantity: Fraction | None) -> Quote:
    """Worked out once per rule and quantity (both immutable): most requests of an operation
    are quoted for the same few."""
    units = rule.max_units if quantity is None else min(quantity, rule.max_units)
    if rule.unit is PriceUnit.job:
        units = Fraction(1)
    return Quote(math.ceil(units * rule.rate), rule.unit, units, rule.rate)


@dataclass(frozen=True)
class Quote:
    """An amount and how it was reached."""

    amount: int
    unit: PriceUnit
    quantity: Fraction
    rate: Fraction

    @cached_property
    def pricing(self) -> Pricing:
        """How the amount was reached, as the ledger writes it: once per quote (quotes are
        shared, ``_quote``; a ``Pricing`` is frozen)."""
        return Pricing(self.unit.value, render(self.quantity), render(self.rate))


def flat_quote(amount: int) -> Quote:
    """``amount`` credits for the job as a whole (a result served from the cache)."""
    return Quote(amount, PriceUnit.job, Fraction(1), Fraction(amount))
