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
    keeper: str
    """The floor plus a synchronous job's three atomic writes and its output file:
    ``POST /keep`` (``bench.servers.keeper_app``)."""
    bare: str
    """FastAPI + redis-py: ``GET /hash/{key}``."""
    gateway: str
    redis: Redis
    """The gateway's Redis (its embedded server, over the unix socket)."""
    gateway_pids: Callable[[], list[int]]
    seconds: float
    pairs: int = 3
    """How many times a gateway point and its reference are measured in turn
    (:meth:`measure_pair`)."""
    points: dict[str, Point] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[tuple[str, bool | None, str]] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TENANT_KEY}"}

    def measure(self, key: str, label: str, request: Request, concurrency: int) -> Point:
        """Run wrk, print the line at once, keep the point under ``key``."""
        point = wrk(request, concurrency, self.seconds, redis=self.redis)
        self.points[key] = point
        line = Line(label, concurrency, point)
        self.lines.append(line)
        print(format_line(line), flush=True)
        return point

    def measure_pair(
        self,
        reference: tuple[str, str, Request],
        measured: tuple[str, str, Request],
        concurrency: int,
    ) -> float:
        """A gateway point and its reference (each ``(key, label, request)``), measured in
        turn ``pairs`` times: a disturbance of the machine falls on one pair, not on the
        ratio. Keeps and prints each side's median run (by req/s); returns the median of the
        pairs' ratios, which the line shows with every pair's."""
        return self.measure_turns(reference, [measured], concurrency)[0]

    def measure_turns(
        self,
        reference: tuple[str, str, Request],
        measured: list[tuple[str, str, Request]],
        concurrency: int,
    ) -> list[float]:
        """:meth:`measure_pair` for several points against one reference: each round
        measures the reference, then each point in turn. The ratios, in ``measured``'s
        order."""
        ref_key, ref_label, ref_request = reference
        ref_points: list[Point] = []
        points: list[list[Point]] = [[] for _ in measured]
        for _ in range(self.pairs):
            ref_points.append(wrk(ref_request, concurrency, self.seconds, redis=self.redis))
            for runs, (_, _, request) in zip(points, measured, strict=True):
                runs.append(wrk(request, concurrency, self.seconds, redis=self.redis))
        self._keep(ref_key, ref_label, ref_points, concurrency, "")
        ratios: list[float] = []
        for runs, (key, label, _) in zip(points, measured, strict=True):
            rounds = sorted((p.rps / r.rps, p, r) for p, r in zip(runs, ref_points, strict=True))
            ratio = rounds[len(rounds) // 2][0]
            shown = " / ".join(f"{r:.1%}{_splits(p, ref, concurrency)}" for r, p, ref in rounds)
            self._keep(
                key, label, runs, concurrency, f"{ratio:6.1%} of {ref_key} (median of {shown})"
            )
            ratios.append(ratio)
        return ratios

    def _keep(self, key: str, label: str, runs: list[Point], concurrency: int, shown: str) -> None:
        """Keep and print the median run (by req/s) of a point measured several times."""
        point = sorted(runs, key=lambda p: p.rps)[len(runs) // 2]
        self.points[key] = point
        line = Line(label, concurrency, point, shown)
        self.lines.append(line)
        print(format_line(line), flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(text, flush=True)

    def target(self, name: str, holds: bool | None, shown: str) -> None:
        self.targets.append((name, holds, shown))


SCENARIOS: list[Callable[[Context], None]] = []


def scenario(fn: Callable[[Context], None]) -> Callable[[Context], None]:
    SCENARIOS.append(fn)
    return fn


HEADER = (
    f"{'scenario':<52} {'c':>3} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>5} "
    f"{'conns':>6} {'cpu µs':>10} {'redis':>6} {'wrk':>4}  ratio"
)
"""``conns``: wrk's connections per server process (``bench.wrk.split_of``), at c > 1.
``cpu µs``: the server's own CPU per request, user + system (``bench.wrk.ServerCpu``).
``redis``, ``wrk``: the CPU per request, in µs, of the gateway's Redis (which the keeper and
the bare server use too; what it spends beside the others' points is the idle gateway's
polling) and of wrk itself: the rest of what one request costs the machine."""


def _split(point: Point) -> str:
    return "+".join(str(n) for n in point.split) if point.split else "?"


def format_line(line: Line) -> str:
    p = line.point
    if p is None:
        return f"{line.label:<52}"
    rps = p.rps if p.requests else math.nan
    split = _split(p) if (line.concurrency or 0) > 1 else ""
    cpu = p.cpu_us
    spent = f"{cpu[0]:.0f}+{cpu[1]:.0f}" if cpu is not None else ""
    redis = p.per_request_us(p.redis_s)
    load = p.per_request_us(p.load_s)
    return (
        f"{line.label:<52} {line.concurrency or '':>3} {rps:>8.0f} {p.p50_ms:>8.2f} "
        f"{p.p99_ms:>8.2f} {p.errors:>5} {split:>6} {spent:>10} {_us(redis):>6} {_us(load):>4}"
        f"  {line.ratio}"
    )


def _us(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def _splits(point: Point, reference: Point, concurrency: int) -> str:
    """How each side's connections fell across its processes in one round (at c > 1)."""
    return f" [{_split(point)} : {_split(reference)}]" if concurrency > 1 else ""
