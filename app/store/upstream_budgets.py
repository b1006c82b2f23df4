"""Upstream budgets: each provider credential's request rate and concurrent jobs, in Redis.

Every process (API pods running ``Prefer: wait`` jobs inline, workers) reserves through one
Lua script (``reserve_upstream.lua``), so the pool is never overspent however many processes
there are. A reservation gives the job a :class:`Turn` (the credential and how long to wait):
the runner puts the job back in the due-queue until then instead of meeting the upstream's
429/502. A credential that runs a limited number of jobs at once has that many job slots.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from app.store import keys
from app.store.scripts import Scripts

WAITER_LAPSE_S = 30.0
"""A job waiting for a slot that has not asked again for this long loses its place (a job
that ended, or a crashed worker's); jobs waiting ask every second or so."""
SLOT_LAPSE_S = 600.0
"""A credential's job slot lapses this long after its job last touched it (a crashed job's
slot comes back; live jobs renew it on every poll)."""


@dataclass(frozen=True)
class Waiting:
    """No slot yet: the job's place among those waiting for one (1: next)."""

    place: int


@dataclass(frozen=True)
class Turn:
    """A request reserved for a job on one credential of the pool."""

    credential: int
    wait_s: float
    at_ms: int
    """When the request may go, on the Redis clock (ms since the epoch)."""


@dataclass(frozen=True)
class Budget:
    """One budget of a provider: the requests and jobs each of its credentials allows."""

    provider: str
    limit: str
    credentials: int
    rate_per_s: float | None = None
    concurrent_jobs: int | None = None
    requests_per_submit: int = 1
    egress_rate_per_s: float | None = None
    """Requests per second every credential together may send from one egress address."""
    egress_jobs: int | None = None
    """Jobs every credential together may run at once (where polls share the egress rate)."""
    credential_rates_per_s: tuple[float, ...] | None = None
    """Each credential's own rate where their plans differ (``rate_per_s`` is then the
    slowest, and what the job slots are counted from)."""


class UpstreamBudgets:
    def __init__(self, redis: Redis, scripts: Scripts, slot_lapse_s: float = SLOT_LAPSE_S) -> None:
        self.redis = redis
        self.scripts = scripts
        self.slot_lapse_s = slot_lapse_s

    async def reserve(
        self,
        budget: Budget,
        job_id: str,
        *,
        credential: int | None = None,
        requests: int = 1,
    ) -> Turn | Waiting:
        """Reserve ``requests`` back-to-back requests for ``job_id`` (on ``credential`` when the
        job is bound to one, as polls of an upstream job are): the credential's schedule moves
        on by that many intervals. While every credential's job slots are taken, or earlier
        waiters are owed the free ones, the job waits in line: :class:`Waiting` says where."""
        n = max(1, budget.credentials)
        interval_ms = round(1000 * requests / budget.rate_per_s) if budget.rate_per_s else 0
        egress = budget.egress_rate_per_s
        egress_ms = round(1000 * requests / egress) if egress else 0
        own = budget.credential_rates_per_s
        intervals = ",".join(str(round(1000 * requests / r)) for r in own[:n]) if own else ""
        chosen, wait_ms, at_ms = await self.scripts.reserve_upstream(
            keys=[
                *(keys.upstream_schedule(budget.provider, budget.limit, i) for i in range(n)),
                *(keys.upstream_jobs(budget.provider, budget.limit, i) for i in range(n)),
                keys.upstream_egress_schedule(budget.provider),
                keys.upstream_egress_jobs(budget.provider),
                keys.upstream_waiting(budget.provider, budget.limit),
                keys.upstream_waiting_seen(budget.provider, budget.limit),
            ],
            args=[
                n,
                interval_ms,
                budget.concurrent_jobs or 0,
                job_id,
                -1 if credential is None else credential,
                round(self.slot_lapse_s * 1000),
                egress_ms,
                budget.egress_jobs or 0,
                intervals,
                round(WAITER_LAPSE_S * 1000),
            ],
        )
        if int(chosen) < 0:
            return Waiting(max(1, int(wait_ms)))
        return Turn(int(chosen), int(wait_ms) / 1000, int(at_ms))

    async def leave_line(self, budget: Budget, job_id: str) -> None:
        """The job no longer waits for a slot (it ended, or moved to another provider)."""
        await self.redis.zrem(keys.upstream_waiting(budget.provider, budget.limit), job_id)
        await self.redis.zrem(keys.upstream_waiting_seen(budget.provider, budget.limit), job_id)

    async def release(self, budget: Budget, job_id: str, credential: int) -> None:
        """Give back the job's concurrent-job slots (no-op when it holds none)."""
        if budget.concurrent_jobs:
            await self.redis.zrem(
                keys.upstream_jobs(budget.provider, budget.limit, credential), job_id
            )
        if budget.egress_jobs:
            await self.redis.zrem(keys.upstream_egress_jobs(budget.provider), job_id)
