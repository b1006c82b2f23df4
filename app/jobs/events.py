"""Job status changes delivered to waiting requests (``Prefer: wait``, SSE) in this process.

One pattern subscription per process receives every job's changes (``save_job.lua``
publishes them) and hands each to the local waiters of that job, so waiting costs no Redis
connection per request. The same connection carries ``keys.AUTH_CHANGES``, which clears the
process's cache of API keys; while the subscription is down that cache is not trusted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.store import keys
from app.store.tenants import TenantStore

log = logging.getLogger(__name__)


class EventHub:
    def __init__(self, redis: Redis, tenants: TenantStore) -> None:
        self.redis = redis
        self.tenants = tenants
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
        pattern = keys.job_events("*")
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                await pubsub.subscribe(keys.AUTH_CHANGES)
                self.tenants.cache_enabled = True
                self._ready.set()
                async for message in pubsub.listen():
                    channel = message["channel"]
                    if channel == keys.AUTH_CHANGES:
                        self.tenants.forget_all()
                        continue
                    for queue in self._waiters.get(channel, ()):
                        queue.put_nowait(message["data"])
            except (RedisError, OSError) as exc:
                log.warning("event subscription lost (%s); reconnecting", type(exc).__name__)
                self.tenants.cache_enabled = False
                self.tenants.forget_all()
                self._wake_all()
                await asyncio.sleep(1)
            finally:
                with suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _wake_all(self) -> None:
        """Let every waiter re-read its job: a change may have been missed while away."""
        for waiters in self._waiters.values():
            for queue in waiters:
                queue.put_nowait("")
