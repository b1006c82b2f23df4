"""Circuit breakers per provider, one state shared by every process through Redis.

Closed: calls go out; outcomes are counted in time buckets over ``window_s``. When at least
``min_requests`` outcomes are in the window and the failures reach ``failure_ratio``, the
circuit opens: no new submission goes to the provider for ``open_s`` (jobs fall back to the
next provider or wait). Then it is half-open: one job is let through as a probe (if its
holder goes quiet for ``probe_s`` another job gets the probe); its success closes the circuit,
its failure opens it again. Polls of upstream jobs already running are never blocked, but
their outcomes count. Only the upstream's own trouble counts as a failure (5xx, timeouts,
unreachable); a user's bad input is a working upstream.

The hot path stays off Redis while all is well: a process that knows a circuit is closed
(its cache, dropped whenever any circuit changes state — the script publishes on
``keys.CACHE_INVALIDATIONS``) lets submissions through without asking, and counts successes
locally, reporting them with the next failure or at least once per window bucket.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from app.store import keys
from app.store.scripts import Scripts


class CircuitState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


@dataclass(frozen=True)
class CircuitPolicy:
    failure_ratio: float = 0.5
    min_requests: int = 10
    window_s: float = 30.0
    open_s: float = 15.0
    probe_s: float = 30.0

    @property
    def bucket_ms(self) -> int:
        return max(100, int(self.window_s * 1000) // 10)


class Circuits:
    def __init__(self, redis: Redis, scripts: Scripts, policy: CircuitPolicy) -> None:
        self.redis = redis
        self.scripts = scripts
        self.policy = policy
        self.cache_enabled = False
        self._closed: set[str] = set()
        self._unreported_ok: Counter[str] = Counter()
        self._reported_at: dict[str, float] = {}

    def forget_all(self) -> None:
        self._closed.clear()

    async def _run(self, provider: str, action: str, job_id: str) -> tuple[bool, CircuitState]:
        p = self.policy
        batched = self._unreported_ok.pop(provider, 0) if action != "allow" else 0
        self._reported_at[provider] = time.monotonic()
        allowed, state = await self.scripts.circuit(
            keys=[keys.circuit(provider), keys.circuit_outcomes(provider)],
            args=[
                action,
                job_id,
                int(p.window_s * 1000),
                p.bucket_ms,
                p.min_requests,
                repr(p.failure_ratio),
                int(p.open_s * 1000),
                int(p.probe_s * 1000),
                batched,
                keys.CACHE_INVALIDATIONS,
            ],
        )
        circuit = CircuitState(state.decode() if isinstance(state, bytes) else str(state))
        if circuit is CircuitState.closed and self.cache_enabled:
            self._closed.add(provider)
        else:
            self._closed.discard(provider)
        return bool(int(allowed)), circuit

    async def allow(self, provider: str, job_id: str) -> tuple[bool, CircuitState]:
        """May ``job_id`` submit to ``provider`` now? (In half-open, only the probe may.)"""
        if provider in self._closed:
            return True, CircuitState.closed
        return await self._run(provider, "allow", job_id)

    async def record(self, provider: str, job_id: str, ok: bool) -> CircuitState:
        """Count one outcome of a call to ``provider``; returns the state after it."""
        if ok and provider in self._closed:
            since = time.monotonic() - self._reported_at.get(provider, 0.0)
            if since * 1000 < self.policy.bucket_ms:
                self._unreported_ok[provider] += 1
                return CircuitState.closed
        _, state = await self._run(provider, "ok" if ok else "fail", job_id)
        return state

    async def state(self, provider: str) -> CircuitState:
        raw = await self.redis.hget(keys.circuit(provider), "state")
        if raw is None:
            return CircuitState.closed
        return CircuitState(raw.decode() if isinstance(raw, bytes) else str(raw))
