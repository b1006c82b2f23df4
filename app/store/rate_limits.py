"""Request-rate limits (GCRA), shared by every process through Redis.

The generic cell rate algorithm keeps one number per key, the *theoretical arrival
time* (TAT). With the emission interval ``T = 60 s / rate_per_minute`` and a bucket of
``burst`` requests, a request at ``now`` is allowed when ``max(TAT, now) + T - burst·T <= now``,
and then moves the TAT on by ``T``. Over any stretch of time ``t`` that starts with a full
bucket, exactly ``burst + floor(t / T)`` requests get through. The Lua script reads the Redis
clock (``TIME``), never the caller's, so processes on different machines agree; the key expires
once the bucket is full again (its state then equals a missing key).

A tenant's concurrent jobs are counted by the script that creates a job
(``keys.tenant_job_slots``), and an upstream credential's by its budget
(``store/upstream_budgets.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from app.store import keys
from app.store.scripts import Scripts


@dataclass(frozen=True)
class Decision:
    """The outcome of one rate check, with what the IETF ``RateLimit`` headers need.

    ``limit`` is the bucket size (``burst``): ``remaining`` is how many more requests would
    pass right now, ``reset_s`` when the bucket is full again, ``retry_after_s`` (0 when
    allowed) when the next request can pass. For the draft headers::

        RateLimit-Policy: "tenant";q=<rate_per_minute>;w=60
        RateLimit: "tenant";r=<remaining>;t=<ceil(reset_s)>
        Retry-After: <ceil(retry_after_s)>          (on 429 only)
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float
    reset_s: float


class RateLimiter:
    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts

    async def check(self, key: str, rate_per_minute: int, burst: int) -> Decision:
        """Count one request against ``key`` (e.g. ``tenant:<id>``, ``provider:<cred>``)."""
        if rate_per_minute <= 0 or burst <= 0:
            raise ValueError("rate_per_minute and burst must be positive")
        interval_us = 60_000_000 / rate_per_minute
        allowed, remaining, retry_after_us, reset_us = await self.scripts.check_rate_limit(
            keys=[keys.rate_limit(key)], args=[repr(interval_us), burst]
        )
        return Decision(
            allowed=bool(int(allowed)),
            limit=burst,
            remaining=int(remaining),
            retry_after_s=int(retry_after_us) / 1_000_000,
            reset_s=int(reset_us) / 1_000_000,
        )

    async def reset(self, key: str) -> None:
        """Forget the key's history (its bucket is full again)."""
        await self.redis.delete(keys.rate_limit(key))
