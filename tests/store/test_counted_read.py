"""A job read by a request counted against its rate limit (``JobStore.read_counted``,
``read_job.lua``), on a real Redis: the same answers as the rate check and the read sent
alone, in one command, a script Redis does not know yet loaded and run exactly once, and an
error of the read raised, not taken for an answer."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.store import keys
from app.store.jobs import JobStore
from app.store.rate_limits import RateCheck, RateLimiter, RateRefused
from app.store.scripts import Scripts


async def calls(redis: Redis) -> dict[str, int]:
    """Commands Redis ran, by name (those sent, and those run inside scripts)."""
    stats: dict[str, Any] = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


def stores(redis: Redis) -> tuple[JobStore, RateLimiter]:
    scripts = Scripts.register(redis)
    return JobStore(redis, scripts, retention_s=3600), RateLimiter(redis, scripts)


async def test_a_counted_read_answers_as_the_check_and_the_read_alone(
    redis_client: Redis,
) -> None:
    store, limiter = stores(redis_client)
    await redis_client.hset(keys.job("job_x"), mapping={"body": "b", "version": 3})
    await store.read_counted(None, RateCheck("warm", 60, 2))  # the script is known to Redis
    before = await calls(redis_client)
    bodies = []
    refused = None
    for _ in range(3):
        try:
            bodies.append(await store.read_counted("job_x", RateCheck("tenant:{t}", 60, 2)))
        except RateRefused as exc:
            refused = exc
    after = await calls(redis_client)
    ran = {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name)}
    # one command each, and nothing else sent (no SCRIPT EXISTS, no EVAL); the INFO asked
    sent = {k: v for k, v in ran.items() if k in ("evalsha", "eval", "hget", "hmget", "info")}
    assert sent == {"evalsha": 3, "hget": 2, "info": 1}  # the refused request read nothing
    assert not any(name.startswith("script") for name in ran)
    assert bodies == ["b", "b"]
    assert refused is not None and refused.decision.retry_after_s > 0
    alone = await limiter.check("tenant:{t}", 60, 2)
    assert not alone.allowed and alone.remaining == 0


async def test_a_script_redis_lost_is_loaded_and_runs_once(redis_client: Redis) -> None:
    store, limiter = stores(redis_client)
    await redis_client.script_flush()
    # a bucket of one: had the script run twice, the answer kept would be the refusal
    assert await store.read_counted("job_none", RateCheck("tenant:{once}", 60, 1)) is None
    assert not (await limiter.check("tenant:{once}", 60, 1)).allowed
    assert await redis_client.pttl(keys.rate_limit("tenant:{once}")) > 0


async def test_an_error_of_the_read_is_raised(redis_client: Redis) -> None:
    store, _ = stores(redis_client)
    await redis_client.set(keys.job("job_plain"), "x")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await store.read_counted("job_plain", RateCheck("tenant:{e}", 60, 5))
