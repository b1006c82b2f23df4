"""Fault injection and counters shared by every emulated provider.

``POST /_sandbox/faults`` arms a fault for a provider (``count`` times, or until cleared);
each emulator asks :meth:`SandboxControl.take_fault` once per request it would otherwise
serve, and reports every request and every accepted submission to :class:`Stats`, so tests
can prove that nothing was submitted twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, Field


class Fault(StrEnum):
    http_500 = "http_500"
    """Answer 500 with the provider's error body."""
    timeout = "timeout"
    """Hold the request without answering (longer than any sane client timeout)."""
    rate_limit = "rate_limit"
    """Answer the provider's documented 429."""
    no_face = "no_face"
    """Report that no face was found (for face operations)."""
    blocked = "blocked"
    """Report the content as blocked by moderation."""
    garbage = "garbage"
    """Answer 200 with a body that is not what the document promises."""
    no_credits = "no_credits"
    """Answer the provider's documented 'out of credits' error."""


class FaultRequest(BaseModel):
    provider: str
    fault: Fault
    count: int | None = Field(
        default=1, ge=1, description="Requests affected; null: until cleared."
    )


@dataclass
class ProviderStats:
    requests: int = 0
    submissions: int = 0
    faults_served: int = 0
    over_limit: int = 0
    """Requests refused for going over the provider's documented rate limit."""
    in_flight: int = 0
    """Upstream tasks started and not yet reported ended to the client (Perfect)."""
    peak_in_flight: int = 0
    dropped: int = 0
    """Tasks the upstream gave up on because the client stopped polling (Perfect: 10 s)."""
    longest_poll_gap_s: float = 0.0
    """The longest a running task went between two of its polls (or its start and a poll)."""
    by_endpoint: Counter[str] = field(default_factory=Counter)


class SandboxControl:
    """In-memory state of one sandbox process (faults armed, counters)."""

    def __init__(self) -> None:
        self._faults: dict[str, list[FaultRequest]] = defaultdict(list)
        self.stats: dict[str, ProviderStats] = defaultdict(ProviderStats)

    def arm(self, request: FaultRequest) -> None:
        self._faults[request.provider].append(request)

    def clear(self) -> None:
        self._faults.clear()

    def reset_stats(self) -> None:
        self.stats.clear()

    def take_fault(self, provider: str) -> Fault | None:
        """The fault to serve on this request, consuming one use of it."""
        queue = self._faults.get(provider)
        if not queue:
            return None
        head = queue[0]
        if head.count is not None:
            remaining = head.count - 1
            if remaining <= 0:
                queue.pop(0)
            else:
                queue[0] = head.model_copy(update={"count": remaining})
        self.stats[provider].faults_served += 1
        return head.fault

    def count_request(self, provider: str, endpoint: str) -> None:
        entry = self.stats[provider]
        entry.requests += 1
        entry.by_endpoint[endpoint] += 1

    def count_submission(self, provider: str) -> None:
        self.stats[provider].submissions += 1

    def task_started(self, provider: str) -> None:
        entry = self.stats[provider]
        entry.in_flight += 1
        entry.peak_in_flight = max(entry.peak_in_flight, entry.in_flight)

    def task_ended(self, provider: str, *, dropped: bool = False) -> None:
        entry = self.stats[provider]
        entry.in_flight -= 1
        entry.dropped += dropped

    def task_polled(self, provider: str, gap_s: float) -> None:
        entry = self.stats[provider]
        entry.longest_poll_gap_s = max(entry.longest_poll_gap_s, gap_s)

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {
            name: {
                "requests": s.requests,
                "submissions": s.submissions,
                "faults_served": s.faults_served,
                "over_limit": s.over_limit,
                "in_flight": s.in_flight,
                "peak_in_flight": s.peak_in_flight,
                "dropped": s.dropped,
                "longest_poll_gap_s": round(s.longest_poll_gap_s, 3),
                "by_endpoint": dict(s.by_endpoint),
            }
            for name, s in self.stats.items()
        }
