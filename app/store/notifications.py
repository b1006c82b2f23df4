"""The Redis channels a process listens on: the invalidations of per-process caches
(``keys.CACHE_INVALIDATIONS``), always, and the status changes of the jobs it is waiting on
(``keys.job_events``, published by ``save_job.lua``), each while it waits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from app.store import keys


@dataclass(frozen=True)
class Notice:
    """What the subscription's connection received: a ``message`` published on ``channel``, or
    Redis's confirmation that a ``subscribe`` / ``unsubscribe`` of it was carried out (they
    come in the order the commands were sent)."""

    kind: Literal["message", "subscribe", "unsubscribe"]
    channel: str
    data: str


class Subscription:
    """One pub/sub connection: subscribed to the invalidations from the start, to other
    channels on demand."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def follow(self, channel: str) -> None:
        """Send ``SUBSCRIBE channel`` (its confirmation arrives among the notices)."""
        await self._pubsub.subscribe(channel)

    async def drop(self, channel: str) -> None:
        """Send ``UNSUBSCRIBE channel``."""
        await self._pubsub.unsubscribe(channel)

    async def notices(self) -> AsyncIterator[Notice]:
        async for message in self._pubsub.listen():
            kind = message["type"]
            if kind in ("message", "subscribe", "unsubscribe"):
                yield Notice(kind, str(message["channel"]), str(message["data"]))


class Notifications:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @asynccontextmanager
    async def subscription(self) -> AsyncIterator[Subscription]:
        """A connection subscribed to the invalidations while the block runs. Raises
        ``RedisError``/``OSError`` when the store goes away."""
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(keys.CACHE_INVALIDATIONS)
            yield Subscription(pubsub)
        finally:
            with suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
