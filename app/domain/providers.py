"""The providers the gateway serves, by the name clients and settings use for them."""

from __future__ import annotations

from typing import Literal

ProviderName = Literal["everypixel", "pixelapi", "perfectcorp", "imagepig", "imagepipeline"]
"""A provider's name: the ``provider`` of a request, the keys of ``routing`` and ``prices``."""
