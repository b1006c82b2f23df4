"""Default price rules and upstream billing, read from the providers' documents.

One gateway credit is about $0.001, which is one PixelAPI credit. Bindings carry a flat price
(``Binding.price``, each adapter's docstring says where it comes from); the rules here replace
it where a document prices the work by the unit:

- **Everypixel** counts audio and video by their length ("minutes of video/audio"):
  ``video.keywords`` 0.2 per second (a 50-s clip: 10, the old flat price), ``video.swap_face``
  and ``video.lipsync`` 2 per second (50 s: 100), capped at 60 s, the longest clip its document
  recommends ("works best with 5–60 second clips"). Speech is 4 per 1,000 characters (2,500
  characters: 10, the old flat price).
- **PixelAPI** audio is 5 credits up to 15 s and 10 up to 30 s: 1/3 per second of the output,
  capped at its 30-s maximum (15 s: 5, 30 s: 10). Its other prices are flat and stay so;
  video is 50 at 480p and 100 at 720p whatever the length, so it stays at its upper bound, 100.
- **Image Pig** counts "each image generated" by ``/flux`` "as two standard API calls":
  ``image.generate`` is 2 per output image.
- Perfect Corp and ImagePipeline price nothing by the unit: flat.

No document prices by output size, so no default rule is per megapixel; an override may be.

**Upstream billing** (:data:`BILLING`): when a provider's account is charged for a task.
``queued``: once the upstream accepted it, however it ends (Everypixel: "Only successful or
accepted (queued) tasks are subject to billing"; only a request answered with an error is
not billed). ``accepted``: once the upstream accepted it, unless the upstream reports it
failed (its work runs on if the gateway stops watching; the documents of PixelAPI and
ImagePipeline say nothing of failed tasks). ``success``: only for a result (Perfect Corp:
"credits only consumed" on success, and a task not polled is dropped; Image Pig answers
synchronously). PixelAPI reports what each task cost (``credits_used``), which wins over the
document.
"""

from __future__ import annotations

from enum import StrEnum
from fractions import Fraction
from functools import cache

from app.domain.operations import Operation
from app.jobs.prices.rules import PriceRule, PriceUnit


class Billing(StrEnum):
    queued = "queued"
    """Every task the upstream accepted, whatever becomes of it."""
    accepted = "accepted"
    """Every task the upstream accepted, unless it reports the task failed."""
    success = "success"
    """Only a task that produced its result."""


BILLING: dict[str, Billing] = {
    "pixelapi": Billing.accepted,
    "everypixel": Billing.queued,
    "imagepipeline": Billing.accepted,
    "perfectcorp": Billing.success,
    "imagepig": Billing.success,
}
"""Providers not listed bill on ``accepted`` (the cautious reading)."""


RULES: dict[tuple[Operation, str], PriceRule] = {
    (Operation.video_keywords, "everypixel"): PriceRule(
        unit=PriceUnit.second, rate=Fraction(1, 5), cap=60
    ),
    (Operation.video_swap_face, "everypixel"): PriceRule(
        unit=PriceUnit.second, rate=Fraction(2), cap=60
    ),
    (Operation.video_lipsync, "everypixel"): PriceRule(
        unit=PriceUnit.second, rate=Fraction(2), cap=60
    ),
    (Operation.audio_speech, "everypixel"): PriceRule(unit=PriceUnit.kchars, rate=Fraction(4)),
    (Operation.audio_generate, "pixelapi"): PriceRule(
        unit=PriceUnit.second, rate=Fraction(1, 3), cap=30
    ),
    (Operation.image_generate, "imagepig"): PriceRule(unit=PriceUnit.output, rate=Fraction(2)),
}
"""Rules by the unit; every other binding is flat at its ``Binding.price``."""


@cache
def default_rule(operation: Operation, provider: str, flat: int) -> PriceRule:
    """Built once per binding: a job asks for it at submission and again as it ends, and a
    rule is frozen, so one instance serves them all."""
    return RULES.get((operation, provider)) or PriceRule.flat(flat)
