"""How fast the emulators answer and how much they allow, read from settings.

Every emulator takes one :class:`SandboxTiming`; the sandbox app (``app.sandbox.app``) builds
it and hands it to each, so the emulators import this module and never the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.config import Settings

ARRIVAL = "mediagate.arrival"
"""ASGI scope extension ``{"monotonic": t}``: the ``time.monotonic()`` at which the HTTP server
read the first bytes of the request (``app.serving`` records it in ``mediagate serve`` and
``mediagate sandbox``). An emulator that dates requests by when they came in uses it rather
than the time its handler runs (see ``app.sandbox.everypixel``)."""


def arrived_at(scope: Mapping[str, Any]) -> float | None:
    """When the server read the request's first bytes, or None (an in-process ASGI call)."""
    stamp = scope.get("extensions", {}).get(ARRIVAL)
    return None if stamp is None else float(stamp["monotonic"])


@dataclass(frozen=True)
class SandboxTiming:
    latency_s: float = 0.0
    """Delay added to every synchronous answer."""
    job_s: float = 1.0
    """Time an asynchronous job takes from submission to completion."""
    requests_per_minute: Mapping[str, float] = field(default_factory=dict)
    """Provider → the request rate per credential its emulator allows, where a test runs a
    bigger plan than the documented one (pixelapi, perfectcorp)."""
    polling_interval_ms: int | None = None
    """The ``polling_interval`` Perfect's task status answers (None: the emulator's own)."""
    ip_requests_per_5_minutes: Mapping[str, float] = field(default_factory=dict)
    """Provider → requests per 5 minutes its emulator allows from one address, where a test
    runs a bigger contract than the documented one (perfectcorp)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxTiming:
        return cls(
            settings.sandbox_latency_s,
            settings.sandbox_job_s,
            {name: rate for name, rate in settings.sandbox_rate_limits.items()},
            settings.sandbox_polling_interval_ms,
            {name: rate for name, rate in settings.sandbox_ip_limits.items()},
        )
