"""The Redis channels every process listens on: each job's status changes (published by
``save_job.lua``) and the invalidations of per-process caches (``keys.CACHE_INVALIDATIONS``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from app.store import keys


class Notifications:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @asynccontextmanager
    async def subscription(self) -> AsyncIterator[AsyncIterator[tuple[str, str]]]:
        """Subscribed to every job's channel and to the invalidations while the block runs:
        (channel, message) pairs. Raises ``RedisError``/``OSError`` when the store goes away."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(keys.job_events("*"))
            await pubsub.subscribe(keys.CACHE_INVALIDATIONS)
            yield _messages(pubsub)
        finally:
            with suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]


async def _messages(pubsub: PubSub) -> AsyncIterator[tuple[str, str]]:
    async for message in pubsub.listen():
        yield str(message["channel"]), str(message["data"])
