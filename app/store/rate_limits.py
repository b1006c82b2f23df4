"""Request-rate limits (GCRA) and concurrency slots, shared by every process through Redis.

**Rate.** The generic cell rate algorithm keeps one number per key, the *theoretical arrival
time* (TAT). With the emission interval ``T = 60 s / rate_per_minute`` and a bucket of
``burst`` requests, a request at ``now`` is allowed when ``max(TAT, now) + T - burst·T <= now``,
and then moves the TAT on by ``T``. Over any stretch of time ``t`` that starts with a full
bucket, exactly ``burst + floor(t / T)`` requests get through. The Lua script reads the Redis
clock (``TIME``), never the caller's, so processes on different machines agree; the key expires
once the bucket is full again (its state then equals a missing key).

**Concurrency.** A sorted set of holders scored by the (Redis-clock) time their slot expires.
Acquiring drops expired holders first, so a crashed process's slots come back after ``ttl_s``;
a holder that acquires again keeps its slot and renews it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


@dataclass
class RateCheck:
    """A request's rate check left to the script that creates its job (``JobStore.create``),
    so the check and the creation are one round trip. ``sent`` tells whether the check went
    out with a creation: if not (the submission stopped before), the caller checks the rate
    itself, so every request is counted once."""

    key: str
    rate_per_minute: float
    burst: int
    sent: bool = False

    def script_args(self) -> list[Any]:
        """The bucket's key and the script's arguments (``lib/rate.lua``)."""
        call = RateLimiter._call(self.key, self.rate_per_minute, self.burst)
        return [*call["keys"], *call["args"]]


class RateRefused(Exception):
    """The rate check that went with a job's creation refused the request: nothing written."""

    def __init__(self, decision: Decision) -> None:
        super().__init__("request rate exceeded")
        self.decision = decision


class RateLimiter:
    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts

    async def check(self, key: str, rate_per_minute: float, burst: int) -> Decision:
        """Count one request against ``key`` (e.g. ``tenant:<id>``, ``provider:<cred>``)."""
        call = self._call(key, rate_per_minute, burst)
        answer = await self.scripts.check_rate_limit(keys=call["keys"], args=call["args"])
        return decision_of(answer, burst)

    @staticmethod
    def _call(key: str, rate_per_minute: float, burst: int) -> dict[str, list[Any]]:
        if rate_per_minute <= 0 or burst <= 0:
            raise ValueError("rate_per_minute and burst must be positive")
        interval_us = 60_000_000 / rate_per_minute
        return {"keys": [keys.rate_limit(key)], "args": [repr(interval_us), burst]}

    async def reset(self, key: str) -> None:
        """Forget the key's history (its bucket is full again)."""
        await self.redis.delete(keys.rate_limit(key))


def decision_of(answer: list[Any], burst: int) -> Decision:
    """The decision of a rate check's script answer ``{allowed, remaining, retry_after_us,
    reset_us}``."""
    allowed, remaining, retry_after_us, reset_us = answer
    return Decision(
        allowed=bool(int(allowed)),
        limit=burst,
        remaining=int(remaining),
        retry_after_s=int(retry_after_us) / 1_000_000,
        reset_s=int(reset_us) / 1_000_000,
    )


class ConcurrencySlots:
    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts

    async def acquire(self, key: str, holder_id: str, limit: int, ttl_s: float) -> bool:
        """Take (or renew) one of ``limit`` slots of ``key`` for ``holder_id`` until ``ttl_s``
        from now. False when all slots are held by others."""
        if limit <= 0 or ttl_s <= 0:
            raise ValueError("limit and ttl_s must be positive")
        acquired = await self.scripts.acquire_slot(
            keys=[keys.concurrency_slots(key)],
            args=[holder_id, limit, max(1, round(ttl_s * 1000))],
        )
        return bool(int(acquired))

    async def release(self, key: str, holder_id: str) -> bool:
        """Give the slot back; False if the holder had none (already released or expired)."""
        return bool(await self.redis.zrem(keys.concurrency_slots(key), holder_id))
