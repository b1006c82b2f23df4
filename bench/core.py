"""What a bench scenario gets (``Context``) and how it reports (``Context.measure``, ``note``).

A scenario is a function ``(ctx: Context) -> None`` registered with ``@scenario``; ``bench.run``
imports the modules named in ``bench.run.SCENARIO_MODULES`` and runs every registered scenario
in order, against servers started once for the whole run. A new scenario (another module)
registers itself the same way and is added to that list.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis

from bench.load import Request
from bench.wrk import Point, wrk

TENANT_KEY = "mg_test_sandbox"
CONCURRENCY = (1, 16)


@dataclass
class Line:
    label: str
    concurrency: int | None
    point: Point | None
    ratio: str = ""


@dataclass
class Context:
    """The servers of this run and the results so far."""

    upstream: str
    """The mock upstream (Image Pig's success answer at once)."""
    floor: str
    """FastAPI + aiohttp forwarding ``POST /forward`` to the upstream."""
    bare: str
    """FastAPI + redis-py: ``GET /hash/{key}``."""
    gateway: str
    redis: Redis
    """The gateway's Redis (its embedded server, over the unix socket)."""
    gateway_pids: Callable[[], list[int]]
    seconds: float
    points: dict[str, Point] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[tuple[str, bool | None, str]] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TENANT_KEY}"}

    def measure(
        self, key: str, label: str, request: Request, concurrency: int, against: str | None = None
    ) -> Point:
        """Run wrk, print the line at once, keep the point under ``key``."""
        point = wrk(request, concurrency, self.seconds)
        self.points[key] = point
        ratio = ""
        if against is not None and against in self.points:
            ratio = f"{point.rps / self.points[against].rps:6.1%} of {against}"
        line = Line(label, concurrency, point, ratio)
        self.lines.append(line)
        print(format_line(line), flush=True)
        return point

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(text, flush=True)

    def target(self, name: str, holds: bool | None, shown: str) -> None:
        self.targets.append((name, holds, shown))


SCENARIOS: list[Callable[[Context], None]] = []


def scenario(fn: Callable[[Context], None]) -> Callable[[Context], None]:
    SCENARIOS.append(fn)
    return fn


HEADER = f"{'scenario':<52} {'c':>3} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>5}  ratio"


def format_line(line: Line) -> str:
    p = line.point
    if p is None:
        return f"{line.label:<52}"
    rps = p.rps if p.requests else math.nan
    return (
        f"{line.label:<52} {line.concurrency or '':>3} {rps:>8.0f} {p.p50_ms:>8.2f} "
        f"{p.p99_ms:>8.2f} {p.errors:>5}  {line.ratio}"
    )
