"""Job status changes delivered to waiting requests (``Prefer: wait``, SSE) in this process.

One pattern subscription per process receives every job's changes (``save_job.lua``
publishes them) and hands each to the local waiters of that job, so waiting costs no Redis
connection per request. The same connection carries ``keys.CACHE_INVALIDATIONS``, which clears
the process's caches (API keys, prices); while the subscription is down they are not trusted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Protocol

from redis.exceptions import RedisError

from app.store import keys
from app.store.notifications import Notifications

log = logging.getLogger(__name__)


class LocalCache(Protocol):
    """A per-process cache kept honest by ``keys.CACHE_INVALIDATIONS``."""

    cache_enabled: bool

    def forget_all(self) -> None: ...


class EventHub:
    def __init__(self, notifications: Notifications, caches: list[LocalCache]) -> None:
        self.notifications = notifications
        self.caches = caches
        self._waiters: dict[str, set[asyncio.Queue[str]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="event-hub")
        with suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=5)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue of the job's new statuses, for as long as the block runs."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        channel = keys.job_events(job_id)
        self._waiters[channel].add(queue)
        try:
            yield queue
        finally:
            waiters = self._waiters.get(channel)
            if waiters is not None:
                waiters.discard(queue)
                if not waiters:
                    del self._waiters[channel]

    async def _listen(self) -> None:
        while True:
            try:
                async with self.notifications.subscription() as messages:
                    self._trust_caches(True)
                    self._ready.set()
                    async for channel, data in messages:
                        if channel == keys.CACHE_INVALIDATIONS:
                            self._trust_caches(True)
                            continue
                        for queue in self._waiters.get(channel, ()):
                            queue.put_nowait(data)
            except (RedisError, OSError) as exc:
                log.warning("event subscription lost (%s); reconnecting", type(exc).__name__)
                self._trust_caches(False)
                self._wake_all()
                await asyncio.sleep(1)

    def _trust_caches(self, trusted: bool) -> None:
        """Empty every local cache; keep using them only while subscribed."""
        for cache in self.caches:
            cache.forget_all()
            cache.cache_enabled = trusted

    def _wake_all(self) -> None:
        """Let every waiter re-read its job: a change may have been missed while away."""
        for waiters in self._waiters.values():
            for queue in waiters:
                queue.put_nowait("")
