"""Job status changes delivered to waiting requests (``Prefer: wait``, SSE) in this process.

One pub/sub connection per process. It subscribes to a job's channel (``save_job.lua``
publishes every status change there) while a request of this process waits on that job, and
hands each change to the local waiters, so waiting costs no Redis connection per request, and
a job nobody waits on costs no process anything when it changes (a pattern subscription to
every job made each process read every job's changes: about a tenth of a millisecond of CPU
per change and process).

No change is missed: :meth:`EventHub.subscribe` returns only once Redis has confirmed the
subscription, and every caller reads the job's state after that, then waits for changes.
When the connection is lost, every waiter is woken to read its job again; once a new
connection has subscribed again, the waiters of each channel are woken once more, for a
change made while no connection listened (the old hub woke them only at the loss, so a
change between their read and the new subscription went unheard).

The same connection carries ``keys.CACHE_INVALIDATIONS``, which clears the process's caches
(API keys, prices); while the connection is down they are not trusted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Protocol

from redis.exceptions import RedisError

from app.store import keys
from app.store.notifications import Notice, Notifications, Subscription

log = logging.getLogger(__name__)


class LocalCache(Protocol):
    """A per-process cache kept honest by ``keys.CACHE_INVALIDATIONS``."""

    cache_enabled: bool

    def forget_all(self) -> None: ...


CONFIRM_S = 5.0
"""The longest a waiter waits for Redis to confirm its subscription; past it (the store
away), it reads the job's state anyway and is woken when the connection is back."""


@dataclass(eq=False)
class _Channel:
    """A job channel this process waits on: its waiters' queues, and whether the current
    connection's subscription to it is confirmed."""

    queues: set[asyncio.Queue[str]] = field(default_factory=set)
    on: asyncio.Event = field(default_factory=asyncio.Event)
    resubscribed: bool = False
    """Subscribed again on a new connection: its waiters are woken once it is confirmed."""


class EventHub:
    def __init__(self, notifications: Notifications, caches: list[LocalCache]) -> None:
        self.notifications = notifications
        self.caches = caches
        self._channels: dict[str, _Channel] = {}
        self._unconfirmed: dict[str, deque[_Channel]] = {}
        """Per channel, the entries whose ``SUBSCRIBE`` was sent and not yet confirmed, in
        the order sent: Redis confirms them in that order."""
        self._live: Subscription | None = None
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
        """A queue of the job's new statuses, for as long as the block runs; entered once
        the subscription is confirmed (or ``CONFIRM_S`` passed), so that a state read inside
        the block is never older than the changes the queue will get."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        channel = keys.job_events(job_id)
        entry = self._channels.get(channel)
        first = entry is None
        if entry is None:
            entry = self._channels[channel] = _Channel()
        entry.queues.add(queue)
        try:
            if first:
                await self._follow(channel, entry)
            if not entry.on.is_set():
                with suppress(TimeoutError):
                    await asyncio.wait_for(entry.on.wait(), timeout=CONFIRM_S)
            yield queue
        finally:
            entry.queues.discard(queue)
            if not entry.queues and self._channels.get(channel) is entry:
                del self._channels[channel]
                # sent before anything else runs: a new waiter's SUBSCRIBE goes after it
                await self._drop(channel)

    async def _follow(self, channel: str, entry: _Channel) -> None:
        """Subscribe the current connection to ``channel`` (none: done when one is made)."""
        live = self._live
        if live is None or self._channels.get(channel) is not entry:
            return
        self._unconfirmed.setdefault(channel, deque()).append(entry)
        with suppress(RedisError, OSError):  # the listener sees the loss and starts over
            await live.follow(channel)

    async def _drop(self, channel: str) -> None:
        live = self._live
        if live is not None:
            with suppress(RedisError, OSError):
                await live.drop(channel)

    async def _listen(self) -> None:
        while True:
            try:
                async with self.notifications.subscription() as subscription:
                    await self._connected(subscription)
                    async for notice in subscription.notices():
                        self._receive(notice)
            except (RedisError, OSError) as exc:
                log.warning("event subscription lost (%s); reconnecting", type(exc).__name__)
                self._live = None
                self._unconfirmed.clear()
                self._trust_caches(False)
                self._wake_all()
                await asyncio.sleep(1)

    async def _connected(self, subscription: Subscription) -> None:
        self._live = subscription
        self._unconfirmed.clear()
        for channel, entry in list(self._channels.items()):
            entry.resubscribed = True
            await self._follow(channel, entry)
        self._trust_caches(True)
        self._ready.set()

    def _receive(self, notice: Notice) -> None:
        if notice.channel == keys.CACHE_INVALIDATIONS:
            if notice.kind == "message":
                self._trust_caches(True)
            return
        if notice.kind == "message":
            entry = self._channels.get(notice.channel)
            for queue in entry.queues if entry is not None else ():
                queue.put_nowait(notice.data)
        elif notice.kind == "subscribe":
            pending = self._unconfirmed.get(notice.channel)
            if not pending:
                return
            confirmed = pending.popleft()
            if not pending:
                del self._unconfirmed[notice.channel]
            confirmed.on.set()
            if confirmed.resubscribed:  # a change may have come while no connection listened
                confirmed.resubscribed = False
                for queue in confirmed.queues:
                    queue.put_nowait("")

    def _trust_caches(self, trusted: bool) -> None:
        """Empty every local cache; keep using them only while subscribed."""
        for cache in self.caches:
            cache.forget_all()
            cache.cache_enabled = trusted

    def _wake_all(self) -> None:
        """Let every waiter re-read its job: a change may have been missed while away."""
        for entry in self._channels.values():
            for queue in entry.queues:
                queue.put_nowait("")
