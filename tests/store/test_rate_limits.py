"""GCRA rate limits and concurrency slots against a real Redis, from several connections."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from app.store import keys
from app.store.rate_limits import ConcurrencySlots, Decision, RateLimiter
from app.store.scripts import Scripts


@pytest.fixture
def limiter(redis_client: Redis) -> RateLimiter:
    return RateLimiter(redis_client, Scripts.register(redis_client))


@pytest.fixture
def slots(redis_client: Redis) -> ConcurrencySlots:
    return ConcurrencySlots(redis_client, Scripts.register(redis_client))


async def server_time_s(redis: Redis) -> float:
    seconds, micros = await redis.time()
    return float(seconds) + micros / 1_000_000


async def test_hammered_limit_admits_exactly_the_gcra_allowance(
    separate_clients: list[Redis],
) -> None:
    rate, burst, duration = 600, 50, 2.0
    limiters = [RateLimiter(c, Scripts.register(c)) for c in separate_clients]
    decisions: list[Decision] = []
    # (Redis clock just before, just after) each decision: when it was made, whatever the
    # event loop's delays on a busy machine
    moments: list[tuple[float, float]] = []

    async def hammer(i: int, deadline: float) -> None:
        """Asks for at least ``duration`` seconds, and on until the limit has refused some:
        a busy machine asks more slowly, so it asks for longer."""
        client, limiter = separate_clients[i % 4], limiters[i % 4]
        while time.monotonic() < deadline or sum(not d.allowed for d in decisions) < 20:
            before = await server_time_s(client)
            decisions.append(await limiter.check("tenant:t1", rate, burst))
            moments.append((before, await server_time_s(client)))

    deadline = time.monotonic() + duration
    await asyncio.gather(*(hammer(i, deadline) for i in range(16)))

    accepted = sum(d.allowed for d in decisions)
    refused = [d for d in decisions if not d.allowed]
    # The burst at once, then one every interval: never more than the Redis-clock span of the
    # decisions allows, and none of what it allows lost (no stall here outlasts the burst).
    per_s = rate / 60
    longest = max(a for _, a in moments) - min(b for b, _ in moments)
    shortest = max(b for b, _ in moments) - min(a for _, a in moments)
    # While this process stalls (a busy machine's event loop away for seconds) nobody asks:
    # the limit keeps at most one burst for later, so what it allowed in a stall beyond the
    # time a burst takes to refill is not an admission lost.
    asked = sorted(b for b, _ in moments)
    stalls = [
        later - earlier - burst / per_s
        for earlier, later in zip(asked, asked[1:], strict=False)
        if later - earlier > burst / per_s
    ]
    assert accepted <= burst + longest * per_s + 1, (accepted, longest)
    unused = sum(stalls) * per_s + len(stalls)
    assert accepted >= burst + shortest * per_s - 1 - unused, (accepted, shortest, stalls)
    assert all(d.remaining == 0 and 0 < d.retry_after_s <= 0.1 for d in refused)
    assert all(d.limit == burst and 0 < d.reset_s <= burst * 0.1 + 1e-6 for d in decisions)


async def test_burst_then_retry_after(limiter: RateLimiter, redis_client: Redis) -> None:
    # One every 10 s after a burst of 3. Answers are read on the Redis clock: a slow caller
    # shifts each by exactly the time that passed since the first call, never more.
    started = await server_time_s(redis_client)
    first = await limiter.check("k", 6, 3)
    assert (first.allowed, first.limit, first.remaining, first.retry_after_s) == (True, 3, 2, 0)
    assert first.reset_s == pytest.approx(10.0, abs=0.001)
    second = await limiter.check("k", 6, 3)
    third = await limiter.check("k", 6, 3)
    assert (second.allowed, second.remaining, third.allowed, third.remaining) == (True, 1, True, 0)
    refused = await limiter.check("k", 6, 3)
    ttl_ms = await redis_client.pttl(keys.rate_limit("k"))
    passed = await server_time_s(redis_client) - started
    assert 30.0 - passed <= third.reset_s <= 30.0
    assert not refused.allowed and refused.remaining == 0
    assert 10.0 - passed <= refused.retry_after_s <= 10.0
    # The key lives exactly as long as its state matters: until the bucket is full again.
    assert 30_000 - passed * 1000 - 1 <= ttl_ms <= 30_000

    fast = await limiter.check("fast", 60, 1)  # one a second, no burst
    assert fast.allowed and fast.remaining == 0
    wait = await limiter.check("fast", 60, 1)
    assert not wait.allowed and 0 < wait.retry_after_s <= 1.0
    await asyncio.sleep(wait.retry_after_s + 0.005)
    assert (await limiter.check("fast", 60, 1)).allowed
    assert not (await limiter.check("fast", 60, 1)).allowed

    await limiter.reset("k")
    assert (await limiter.check("k", 60, 3)).remaining == 2
    assert (await limiter.check("other", 60, 3)).remaining == 2
    with pytest.raises(ValueError):
        await limiter.check("k", 0, 3)


async def test_slots_never_exceed_the_limit_under_concurrent_acquires(
    separate_clients: list[Redis],
) -> None:
    pools = [ConcurrencySlots(c, Scripts.register(c)) for c in separate_clients]
    results = await asyncio.gather(
        *(pools[i % 4].acquire("provider:tts", f"job-{i}", 10, 30) for i in range(200))
    )
    assert sum(results) == 10
    assert await separate_clients[0].zcard(keys.concurrency_slots("provider:tts")) == 10

    in_use = peak = served = 0

    async def worker(pool: ConcurrencySlots, holder: str) -> None:
        nonlocal in_use, peak, served
        while not await pool.acquire("provider:swap", holder, 3, 30):
            await asyncio.sleep(0.001)
        in_use += 1
        peak = max(peak, in_use)
        await asyncio.sleep(0.002)
        in_use -= 1
        served += 1
        await pool.release("provider:swap", holder)

    await asyncio.gather(*(worker(pools[i % 4], f"job-{i}") for i in range(200)))
    assert served == 200 and peak == 3


async def test_slot_is_idempotent_per_holder_and_expires(slots: ConcurrencySlots) -> None:
    assert await slots.acquire("k", "a", 2, 30)
    assert await slots.acquire("k", "a", 2, 30)
    assert await slots.acquire("k", "b", 2, 2.0)  # long enough for a slow caller
    assert not await slots.acquire("k", "c", 2, 30)
    assert await slots.release("k", "a")
    assert not await slots.release("k", "a")
    assert await slots.acquire("k", "c", 2, 30)
    assert not await slots.acquire("k", "d", 2, 30)
    await asyncio.sleep(2.05)  # "b" stopped renewing: its slot comes back
    assert await slots.acquire("k", "d", 2, 30)
    assert not await slots.acquire("k", "e", 2, 30)
    assert await slots.acquire("other", "e", 2, 30)
