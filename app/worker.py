"""The worker: claims due jobs under a lease and advances each by one step.

Runs inside ``mediagate serve`` or alone as ``mediagate worker`` (any number of them). A
worker killed at any line loses nothing: the jobs it held come back to the due-queue when
their leases expire, and the runner resumes each from what its record says (polling an
upstream job already submitted, never submitting it twice).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from contextlib import suppress

from redis.exceptions import RedisError

from app.jobs.batches import BatchDriver
from app.jobs.doorbell import Doorbell
from app.jobs.runner import STEP_GRACE_S, JobRunner
from app.jobs.storage import Sweeper
from app.metrics import Metrics
from app.store.jobs import JobStore, SaveRefused, Stored
from app.store.workers import WorkerPresence
from app.webhooks import WebhookSender

log = logging.getLogger(__name__)

IDLE_SLEEP_S = 0.05
"""Pause after a claim that found nothing; it doubles while claims keep finding nothing."""
IDLE_SLEEP_MAX_S = 0.4
"""The longest pause between claims of an idle worker. It never outlasts the time the next job
in the queue is due (read before each pause), so only a job made due meanwhile by another
process waits for the pause's end; a job created in this process, and every step this worker
ends, ring its doorbell and end the pause at once."""
MIN_PAUSE_S = 0.005
"""The shortest pause, for a job due now that another worker claimed first."""
HEARTBEAT_S = 5.0


class Worker:
    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        metrics: Metrics,
        *,
        concurrency: int,
        lease_s: float,
        webhooks: WebhookSender | None = None,
        presence: WorkerPresence | None = None,
        batches: BatchDriver | None = None,
        sweeper: Sweeper | None = None,
        doorbell: Doorbell | None = None,
    ) -> None:
        self.doorbell = doorbell or Doorbell()
        self.webhooks = webhooks
        self.batches = batches
        self.sweeper = sweeper
        self._sweeping: asyncio.Task[None] | None = None
        self.store = store
        self.presence = presence or WorkerPresence(store.redis)
        self.runner = runner
        self.metrics = metrics
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self._tasks: set[asyncio.Task[None]] = set()
        self._sender: asyncio.Task[None] | None = None
        self._batch_driver: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Claim and advance jobs until :meth:`stop`; back off while Redis is away."""
        backoff = 0.0
        last_beat = 0.0
        loop = asyncio.get_running_loop()
        if self.webhooks is not None:
            self._sender = asyncio.create_task(self.webhooks.run(), name="webhooks")
        if self.batches is not None:
            self._batch_driver = asyncio.create_task(self.batches.run(), name="batches")
        if self.sweeper is not None:
            self._sweeping = asyncio.create_task(self.sweeper.run(), name="sweeper")
        idle = IDLE_SLEEP_S
        while not self._stopping.is_set():
            try:
                if loop.time() - last_beat > HEARTBEAT_S:
                    await self._heartbeat()
                    last_beat = loop.time()
                claimed = await self._claim()
                backoff = 0.0
            except (RedisError, OSError) as exc:
                backoff = min(max(backoff * 2, 0.1), 5.0)
                log.warning("worker: store unavailable (%s); retry in %.1fs", exc, backoff)
                await self._sleep(backoff)
                continue
            if claimed:
                idle = IDLE_SLEEP_S
                continue
            try:
                next_due_s = await self.store.next_due_in_s()
            except (RedisError, OSError):
                next_due_s = None  # the next claim finds out
            pause = idle if next_due_s is None else min(idle, max(next_due_s, MIN_PAUSE_S))
            await self.doorbell.wait(pause)
            idle = min(idle * 2, IDLE_SLEEP_MAX_S)

    async def _claim(self) -> int:
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            return 1
        claimed = await self.store.claim(min(free, 32), self.lease_s)
        for stored in claimed:
            task = asyncio.create_task(self._advance(stored))
            self._tasks.add(task)
            task.add_done_callback(self._step_ended)
        return len(claimed)

    def _step_ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.doorbell.ring()  # its job may be due again at once (a fallback, a quick poll)

    async def _advance(self, stored: Stored) -> None:
        provider = stored.record.plan[0]
        gauge = self.metrics.jobs_in_flight.labels(provider)
        gauge.inc()
        try:
            await self.runner.step(stored)
        except SaveRefused as refused:
            log.info("job %s: %s; left to its new owner", stored.record.job.id, refused.reason)
        except (RedisError, OSError) as exc:
            log.warning(
                "job %s: store unavailable (%s); handing it back once the store returns",
                stored.record.job.id,
                exc,
            )
            await self._hand_back(stored)
        except Exception:
            log.exception("job %s: step failed; its lease will expire", stored.record.job.id)
        finally:
            gauge.dec()

    async def _hand_back(self, stored: Stored) -> None:
        """After a store outage, end our lease at once (the next claim picks the job up
        again) rather than leaving the job idle until the lease runs out."""
        if stored.lease is None:
            return
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.lease_s
        while loop.time() < give_up and not self._stopping.is_set():
            try:
                await self.store.renew(stored.record.job.id, stored.lease, 0)
                return
            except (RedisError, OSError):
                await self._sleep(0.5)

    async def _heartbeat(self) -> None:
        await self.presence.beat(self.id)
        self.metrics.queue_depth.set(await self.store.queue_depth())

    async def _sleep(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def stop(self, grace_s: float = STEP_GRACE_S) -> None:
        """Stop claiming; let running steps finish for ``grace_s``, then cancel them."""
        self._stopping.set()
        self.doorbell.ring()
        if self.webhooks is not None:
            self.webhooks.stop()
        if self.batches is not None:
            self.batches.stop()
        if self.sweeper is not None:
            self.sweeper.stop()
        if self._sender is not None:
            await asyncio.wait([self._sender], timeout=grace_s)
        if self._batch_driver is not None:
            await asyncio.wait([self._batch_driver], timeout=grace_s)
        if self._sweeping is not None:
            await asyncio.wait([self._sweeping], timeout=grace_s)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
        with suppress(RedisError, OSError):
            await self.presence.leave(self.id)
