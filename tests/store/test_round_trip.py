"""One round trip for commands of several stores (``app.store.round_trip``), on a real Redis:
the same answers as each sent alone, in one network exchange, a script Redis does not know
yet loaded and run exactly once, and errors raised by the command they belong to."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.store import keys
from app.store.rate_limits import RateLimiter
from app.store.round_trip import RoundTrip
from app.store.scripts import Scripts


async def calls(redis: Redis) -> dict[str, int]:
    """Commands Redis ran, by name (those sent, and those run inside scripts)."""
    stats: dict[str, Any] = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


async def test_a_rate_check_and_a_read_in_one_trip_answer_as_alone(redis_client: Redis) -> None:
    limiter = RateLimiter(redis_client, Scripts.register(redis_client))
    await redis_client.hset("job:x", mapping={"body": "b", "version": 3})
    await limiter.check("warm", 60, 2)  # the script is known to Redis
    trip = RoundTrip(redis_client)
    decisions = [limiter.check_in(trip, "tenant:{t}", 60, 2) for _ in range(3)]
    read = trip.command("HMGET", "job:x", "body", "version", "lease")
    before = await calls(redis_client)
    await trip.run()
    after = await calls(redis_client)
    ran = {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name)}
    # the queued commands, and nothing else sent (no SCRIPT EXISTS, no EVAL); the INFO asked
    sent = {k: v for k, v in ran.items() if k in ("evalsha", "eval", "hmget", "info")}
    assert sent == {"evalsha": 3, "hmget": 1, "info": 1}
    assert not any(name.startswith("script") for name in ran)
    assert [d().allowed for d in decisions] == [True, True, False]
    assert decisions[2]().retry_after_s > 0
    assert trip.result(read) == ["b", "3", None]
    alone = await limiter.check("tenant:{t}", 60, 2)
    assert not alone.allowed and alone.remaining == 0


async def test_a_script_redis_lost_is_loaded_and_runs_once(redis_client: Redis) -> None:
    limiter = RateLimiter(redis_client, Scripts.register(redis_client))
    await redis_client.script_flush()
    trip = RoundTrip(redis_client)
    first = limiter.check_in(trip, "tenant:{once}", 60, 1)
    await trip.run()
    # a bucket of one: had the script run twice, the answer kept would be the refusal
    assert first().allowed and first().remaining == 0
    assert not (await limiter.check("tenant:{once}", 60, 1)).allowed
    assert await redis_client.pttl(keys.rate_limit("tenant:{once}")) > 0


async def test_an_error_belongs_to_its_command(redis_client: Redis) -> None:
    await redis_client.set("plain", "x")
    trip = RoundTrip(redis_client)
    wrong = trip.command("HMGET", "plain", "body")
    right = trip.command("GET", "plain")
    await trip.run()
    assert trip.result(right) == "x"
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        trip.result(wrong)
