"""Circuit breakers against a real Redis, shared by several processes' clients."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from app.store import keys
from app.store.circuits import CircuitPolicy, Circuits, CircuitState
from app.store.scripts import Scripts

POLICY = CircuitPolicy(failure_ratio=0.5, min_requests=4, window_s=5, open_s=0.3, probe_s=0.3)


def breakers(clients: list[Redis], policy: CircuitPolicy = POLICY) -> list[Circuits]:
    return [Circuits(c, Scripts.register(c), policy) for c in clients]


async def test_opens_at_the_failure_ratio_once_enough_calls_are_seen(
    separate_clients: list[Redis],
) -> None:
    a, b = breakers(separate_clients[:2])
    assert await a.record("pixelapi", "j1", ok=False) is CircuitState.closed
    assert await b.record("pixelapi", "j2", ok=True) is CircuitState.closed
    assert await a.record("pixelapi", "j3", ok=False) is CircuitState.closed  # 2/3 < 4 seen
    assert await b.record("pixelapi", "j4", ok=False) is CircuitState.open  # 3/4 ≥ 50 %
    for breaker in (a, b):
        assert await breaker.allow("pixelapi", "j5") == (False, CircuitState.open)
    assert await a.allow("imagepig", "j5") == (True, CircuitState.closed)


async def test_successes_keep_it_closed(redis_client: Redis) -> None:
    (breaker,) = breakers([redis_client])
    for i in range(6):
        await breaker.record("pixelapi", f"ok{i}", ok=True)
    for i in range(5):
        assert await breaker.record("pixelapi", f"f{i}", ok=False) is CircuitState.closed
    assert await breaker.record("pixelapi", "f5", ok=False) is CircuitState.open  # 6 of 12


async def test_half_open_lets_one_probe_through_and_its_success_closes(
    separate_clients: list[Redis],
) -> None:
    a, b = breakers(separate_clients[:2])
    for i in range(4):
        await a.record("pixelapi", f"f{i}", ok=False)
    assert (await a.allow("pixelapi", "early"))[0] is False
    await asyncio.sleep(0.35)
    assert await a.allow("pixelapi", "probe") == (True, CircuitState.half_open)
    assert await b.allow("pixelapi", "other") == (False, CircuitState.half_open)
    assert await a.record("pixelapi", "probe", ok=True) is CircuitState.closed
    assert await b.allow("pixelapi", "other") == (True, CircuitState.closed)
    assert await b.state("pixelapi") is CircuitState.closed


async def test_a_failed_probe_opens_it_again(redis_client: Redis) -> None:
    (breaker,) = breakers([redis_client])
    for i in range(4):
        await breaker.record("pixelapi", f"f{i}", ok=False)
    await asyncio.sleep(0.35)
    assert (await breaker.allow("pixelapi", "probe"))[0]
    assert await breaker.record("pixelapi", "probe", ok=False) is CircuitState.open
    assert (await breaker.allow("pixelapi", "next"))[0] is False


async def test_a_silent_probe_is_handed_on(redis_client: Redis) -> None:
    (breaker,) = breakers([redis_client])
    for i in range(4):
        await breaker.record("pixelapi", f"f{i}", ok=False)
    await asyncio.sleep(0.35)
    assert (await breaker.allow("pixelapi", "crashed"))[0]
    assert (await breaker.allow("pixelapi", "next"))[0] is False
    await asyncio.sleep(0.35)
    assert await breaker.allow("pixelapi", "next") == (True, CircuitState.half_open)


async def test_a_closed_circuit_is_cached_until_any_circuit_changes(
    redis_client: Redis, separate_clients: list[Redis]
) -> None:
    cached, other = breakers(separate_clients[:2])
    cached.cache_enabled = True
    assert (await cached.allow("pixelapi", "j"))[0]
    async with redis_client.pubsub() as pubsub:
        await pubsub.subscribe(keys.CACHE_INVALIDATIONS)
        await pubsub.get_message(timeout=1)  # the subscription confirmation
        for i in range(4):
            await other.record("pixelapi", f"f{i}", ok=False)
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert message is not None and message["data"] == "circuit"
    cached.forget_all()  # what the EventHub does on that message
    assert await cached.allow("pixelapi", "j") == (False, CircuitState.open)


async def test_locally_counted_successes_are_reported_with_the_next_failure(
    redis_client: Redis,
) -> None:
    (breaker,) = breakers([redis_client], CircuitPolicy(min_requests=10, window_s=60))
    breaker.cache_enabled = True
    assert (await breaker.allow("pixelapi", "j"))[0]  # learns it is closed
    for i in range(12):
        await breaker.record("pixelapi", f"ok{i}", ok=True)
    counts = await redis_client.hgetall(keys.circuit_outcomes("pixelapi"))
    assert sum(int(v) for v in counts.values()) < 12  # mostly kept in the process
    for i in range(11):
        assert await breaker.record("pixelapi", f"f{i}", ok=False) is CircuitState.closed
    assert await breaker.record("pixelapi", "f11", ok=False) is CircuitState.open  # 12 of 24
