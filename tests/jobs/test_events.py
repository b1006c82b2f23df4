"""The event hub against a real Redis: a process subscribes to a job's channel only while a
request waits on that job, is subscribed before the wait begins, and misses nothing when its
connection goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest
from redis.asyncio import Redis

from app.jobs.events import EventHub
from app.store import keys
from app.store.notifications import Notifications
from tests.utils.deadlines import JOB_S


class Cache:
    """A per-process cache as the hub sees one: counts how often it was emptied."""

    def __init__(self) -> None:
        self.cache_enabled = False
        self.emptied = 0

    def forget_all(self) -> None:
        self.emptied += 1


@pytest.fixture
async def cache() -> Cache:
    return Cache()


@pytest.fixture
async def hub(redis_url: str, redis_client: Redis, cache: Cache) -> AsyncIterator[EventHub]:
    from app.store.connection import connect

    own = connect(redis_url, timeout_s=JOB_S)
    events = EventHub(Notifications(own), [cache])
    await events.start()
    yield events
    await events.stop()
    await own.aclose()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    async with asyncio.timeout(JOB_S):
        while not await check():
            await asyncio.sleep(0.02)


async def job_channels(redis: Redis) -> set[str]:
    # the client decodes responses (``connect``): the channels are str
    return set(cast(list[str], await redis.pubsub_channels(keys.job_events("*"))))


async def test_a_job_is_listened_to_only_while_a_request_waits_on_it(
    hub: EventHub, redis_client: Redis, cache: Cache
) -> None:
    assert cache.cache_enabled
    assert await redis_client.pubsub_numpat() == 0  # no process reads every job's changes
    assert await redis_client.publish(keys.job_events("job_nobody"), "running") == 0
    async with hub.subscribe("job_a") as changes:
        # subscribed before the block began: a change made now reaches the waiter
        assert await redis_client.publish(keys.job_events("job_a"), "running") == 1
        assert await asyncio.wait_for(changes.get(), JOB_S) == "running"
        assert await job_channels(redis_client) == {keys.job_events("job_a")}

    async def gone() -> bool:
        return not await job_channels(redis_client)

    await until(gone, "the job's channel unsubscribed")


async def test_two_waiters_of_one_job_share_its_subscription(
    hub: EventHub, redis_client: Redis
) -> None:
    channel = keys.job_events("job_b")
    async with hub.subscribe("job_b") as first:
        async with hub.subscribe("job_b") as second:
            assert await redis_client.publish(channel, "running") == 1
            assert await asyncio.wait_for(first.get(), JOB_S) == "running"
            assert await asyncio.wait_for(second.get(), JOB_S) == "running"
        # the second left; the first still hears
        assert await redis_client.publish(channel, "succeeded") == 1
        assert await asyncio.wait_for(first.get(), JOB_S) == "succeeded"


async def test_a_waiter_right_after_the_last_one_left_is_subscribed(
    hub: EventHub, redis_client: Redis
) -> None:
    """Leaving sends UNSUBSCRIBE; a new waiter of the same job at once sends SUBSCRIBE after
    it, and is entered only once that one is confirmed."""
    channel = keys.job_events("job_c")
    for _ in range(20):
        async with hub.subscribe("job_c"):
            pass
        async with hub.subscribe("job_c") as changes:
            assert await redis_client.publish(channel, "running") == 1
            assert await asyncio.wait_for(changes.get(), JOB_S) == "running"


async def test_a_lost_connection_wakes_the_waiters_and_is_made_again(
    hub: EventHub, redis_client: Redis, cache: Cache
) -> None:
    """Redis drops the hub's connection: the waiters are woken to read their jobs again, the
    caches are emptied, the waiters are woken once more when the hub has subscribed again (a
    change made in between was heard by no one), and changes reach them as before."""
    channel = keys.job_events("job_d")
    async with hub.subscribe("job_d") as changes:
        emptied = cache.emptied
        # every pub/sub connection of this test process's Redis: the hub's among them
        assert await redis_client.client_kill_filter(_type="pubsub") >= 1
        assert await asyncio.wait_for(changes.get(), JOB_S) == ""  # woken at the loss
        assert cache.emptied > emptied
        # a change made before the hub listens again is not heard: the waiter is woken once
        # more when the new subscription is confirmed, to read its job after it
        await redis_client.publish(channel, "succeeded")
        assert await asyncio.wait_for(changes.get(), JOB_S) == ""

        async def heard() -> bool:
            """A change published now reaches the waiter (more wakes may come first, and
            one published while the hub was between connections is lost: it woke instead)."""
            await redis_client.publish(channel, "running")
            while not changes.empty():
                if changes.get_nowait() == "running":
                    return True
            return False

        await until(heard, "subscribed again")
    assert cache.cache_enabled
