"""Fault injection and counters shared by every emulated provider.

``POST /_sandbox/faults`` arms a fault for a provider (``count`` times, or until cleared),
aimed at every request (``on: any``), at submissions or at status polls only (``on: submit``,
``on: poll``), and optionally at requests whose path starts with ``path``. Each emulator asks
:meth:`SandboxControl.take_fault` once per request it would otherwise serve, saying which kind
of request it is, and counts every request and every accepted submission in its
:class:`ProviderStats` (``count_request``, ``count_submission``), so tests can prove that
nothing was submitted twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


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
    http_429 = "http_429"
    """Answer a bare 429 Too Many Requests, without ``Retry-After``."""
    http_502 = "http_502"
    """Answer 502 Bad Gateway (at Everypixel, its documented 'too many requests')."""
    reset = "reset"
    """Start the answer, then drop the connection before the body is complete."""
    unknown_status = "unknown_status"
    """On a status poll: answer the task with a status value the document does not list."""


class FaultTarget(StrEnum):
    any = "any"
    """Every request the emulator serves."""
    submit = "submit"
    """Submissions only (the requests that start billable work)."""
    poll = "poll"
    """Status polls of a task only."""


class FaultRequest(BaseModel):
    provider: str
    fault: Fault
    count: int | None = Field(
        default=1, ge=1, description="Requests affected; null: until cleared."
    )
    on: FaultTarget = Field(default=FaultTarget.any, description="Which requests it hits.")
    path: str | None = Field(
        default=None, description="Only requests whose path starts with this.", max_length=300
    )

    def hits(self, kind: FaultTarget, path: str) -> bool:
        if self.on is not FaultTarget.any and self.on is not kind:
            return False
        return self.path is None or path.startswith(self.path)


class DroppedConnection(Response):
    """Answer 200 with part of a JSON body, then end without finishing it: the server closes
    the connection, and the client sees the answer cut off (a reset, as it sees it)."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"status": "', "more_body": True})


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

    def take_fault(
        self, provider: str, kind: FaultTarget = FaultTarget.any, path: str = ""
    ) -> Fault | None:
        """The first armed fault aimed at this request (a ``kind`` of request at ``path``),
        consuming one use of it."""
        queue = self._faults.get(provider)
        if not queue:
            return None
        index = next((i for i, armed in enumerate(queue) if armed.hits(kind, path)), None)
        if index is None:
            return None
        armed = queue[index]
        if armed.count is not None:
            remaining = armed.count - 1
            if remaining <= 0:
                queue.pop(index)
            else:
                queue[index] = armed.model_copy(update={"count": remaining})
        self.stats[provider].faults_served += 1
        return armed.fault

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
