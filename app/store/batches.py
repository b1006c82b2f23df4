"""Batches in Redis: the batch hash, its items, what became of each, and the driver's queue.

``batch`` (HASH) holds the counters (``next`` item to start, ``running``, ``succeeded``,
``failed``, ``canceled``), the ``status``, and ``starting``: the item a driver has taken and
not yet recorded, with the job id it will have. Every change of the counters is one script
(``batch_*.lua``), so two drivers, a cancel and a crash at any line leave them adding up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.asyncio import Redis

from app.domain.batches import BatchCounts, BatchStatus
from app.domain.models import JobStatus
from app.domain.operations import Operation
from app.store import keys
from app.store.jobs import now_ms
from app.store.scripts import Scripts


@dataclass(frozen=True)
class StoredBatch:
    id: str
    tenant_id: str
    operation: Operation
    status: BatchStatus
    total: int
    counts: BatchCounts
    metadata: dict[str, object]
    callback_url: str | None
    created_ms: int
    completed_ms: int | None
    stopped_at: int | None
    """First item ended without starting (out of credits, or canceled), if any."""
    stopped: dict[str, object] | None
    """What those items ended with."""


@dataclass(frozen=True)
class TakenItem:
    index: int
    job_id: str
    body: str
    """The item's request body (JSON)."""
    resumed: bool
    """Taken by a driver that stopped before recording it: its job may already exist."""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class BatchStore:
    def __init__(self, redis: Redis, scripts: Scripts, *, retention_s: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.retention_s = retention_s

    async def create(
        self,
        batch_id: str,
        tenant_id: str,
        operation: Operation,
        items: list[str],
        *,
        metadata: dict[str, object],
        callback_url: str | None,
    ) -> bool:
        """Store a new batch and make it due for a driver at once; False (nothing written)
        when a batch with the id exists already."""
        created = await self.scripts.batch_create(
            keys=[keys.batch(batch_id), keys.batch_items(batch_id), keys.BATCHES_DUE],
            args=[
                batch_id,
                tenant_id,
                operation.value,
                BatchStatus.running.value,
                json.dumps(metadata),
                callback_url or "",
                now_ms(),
                *items,
            ],
        )
        return bool(int(created))

    async def get(self, batch_id: str) -> StoredBatch | None:
        raw = await self.redis.hgetall(keys.batch(batch_id))
        if not raw:
            return None
        fields = {_text(k) or "": _text(v) or "" for k, v in raw.items()}
        total = int(fields["total"])
        running, succeeded = int(fields["running"]), int(fields["succeeded"])
        failed, canceled = int(fields["failed"]), int(fields["canceled"])
        counts = BatchCounts(
            pending=total - int(fields["next"]),
            running=running + (1 if fields["starting"] else 0),  # one may be starting
            succeeded=succeeded,
            failed=failed,
            canceled=canceled,
        )
        return StoredBatch(
            id=batch_id,
            tenant_id=fields["tenant"],
            operation=Operation(fields["operation"]),
            status=BatchStatus(fields["status"]),
            total=total,
            counts=counts,
            metadata=json.loads(fields["metadata"]),
            callback_url=fields["callback"] or None,
            created_ms=int(fields["created_ms"]),
            completed_ms=int(fields["completed_ms"]) if "completed_ms" in fields else None,
            stopped_at=int(fields["stopped_at"]) if "stopped_at" in fields else None,
            stopped=json.loads(fields["stopped"]) if "stopped" in fields else None,
        )

    # -- the driver -----------------------------------------------------------------------

    async def claim(self, limit: int, lease_ms: int) -> list[str]:
        """Batches due for a driver pass, each leased to this caller until ``lease_ms`` on."""
        now = now_ms()
        due = await self.scripts.claim_webhooks(
            keys=[keys.BATCHES_DUE], args=[now, now + lease_ms, limit]
        )
        return [d.decode() if isinstance(d, bytes) else str(d) for d in due]

    async def again_in(self, batch_id: str, delay_ms: int) -> None:
        """The next pass over a batch (not for a completed one: it has left the queue)."""
        await self.redis.zadd(keys.BATCHES_DUE, {batch_id: now_ms() + delay_ms}, xx=True)

    async def take(self, batch_id: str, job_id: str) -> TakenItem | None:
        taken = await self.scripts.batch_take(
            keys=[keys.batch(batch_id), keys.batch_items(batch_id)], args=[job_id]
        )
        if taken is None:
            return None
        index, job, body, resumed = taken
        return TakenItem(int(index), _text(job) or "", _text(body) or "{}", resumed == 1)

    async def started(self, batch_id: str, item: TakenItem) -> None:
        await self._settle(batch_id, item, "job", "", stop=False)

    async def item_failed(
        self, batch_id: str, item: TakenItem, error: dict[str, str], *, stop: bool
    ) -> None:
        body = json.dumps({"status": JobStatus.failed.value, "error": error})
        await self._settle(batch_id, item, "failed", body, stop=stop)

    async def untake(self, batch_id: str, item: TakenItem) -> None:
        """Put the item back (not now); canceled instead when the batch was canceled."""
        await self._settle(
            batch_id, item, "untake", json.dumps({"status": JobStatus.canceled.value}), stop=False
        )

    async def _settle(
        self, batch_id: str, item: TakenItem, outcome: str, body: str, *, stop: bool
    ) -> None:
        await self.scripts.batch_settle_item(
            keys=[
                keys.batch(batch_id),
                keys.batch_results(batch_id),
                keys.batch_open(batch_id),
            ],
            args=[item.index, item.job_id, outcome, body, 1 if stop else 0],
        )

    async def open_jobs(self, batch_id: str) -> list[str]:
        members = await self.redis.smembers(keys.batch_open(batch_id))
        return sorted(_text(m) or "" for m in members)

    async def job_statuses(self, job_ids: list[str]) -> list[JobStatus | None]:
        """Each job's status (``None`` for one that no longer exists)."""
        if not job_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(keys.job(job_id), "status")
            raw = await pipe.execute()
        return [JobStatus(_text(s) or "") if s is not None else None for s in raw]

    async def job_ended(self, batch_id: str, job_id: str, status: JobStatus) -> None:
        await self.scripts.batch_job_ended(
            keys=[keys.batch(batch_id), keys.batch_open(batch_id)],
            args=[job_id, status.value],
        )

    async def complete(self, batch_id: str) -> bool:
        """Complete the batch if every item has ended; queues its webhook. True if it did."""
        done = await self.scripts.batch_complete(
            keys=[
                keys.batch(batch_id),
                keys.batch_items(batch_id),
                keys.batch_results(batch_id),
                keys.batch_open(batch_id),
                keys.BATCHES_DUE,
                keys.WEBHOOKS_DUE,
            ],
            args=[now_ms(), batch_id, self.retention_s],
        )
        return bool(done)

    # -- clients --------------------------------------------------------------------------

    async def cancel(self, batch_id: str) -> BatchStatus | None:
        """Cancel; the status the batch had (``None``: unknown)."""
        stopped = json.dumps({"status": JobStatus.canceled.value})
        before = await self.scripts.batch_cancel(
            keys=[keys.batch(batch_id), keys.BATCHES_DUE], args=[now_ms(), batch_id, stopped]
        )
        text = _text(before)
        return BatchStatus(text) if text else None

    async def results(self, batch_id: str, start: int, stop: int) -> list[dict[str, object]]:
        """What became of items ``start`` to ``stop - 1`` (``{}`` for one not started)."""
        indices = list(range(start, stop))
        if not indices:
            return []
        raw = await self.redis.hmget(keys.batch_results(batch_id), indices)
        return [json.loads(r) if r is not None else {} for r in raw]
