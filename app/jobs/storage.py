"""Keeping bytes: files and outputs stored under the tenant's quota, deleted when their retention
ends.

:class:`Storage` is the one way bytes are stored (uploads, inline inputs, job outputs): it
counts them against the tenant's quota and schedules their deletion in one script
(``StorageLedger.reserve``) before writing them, so no byte is on disk without a deletion
scheduled. A job run while its client waits has its output's deletion scheduled by its creation
instead, and its terminal save counts the output (:meth:`Storage.write_scheduled`): one round
trip fewer for the job, and bytes that exist for the length of one write before they count
against the quota. :class:`Sweeper` (run by every worker) deletes the bytes whose retention
ended; see ``app/store/storage.py`` for why a crash at any line loses nothing and counts
nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial

from redis.exceptions import RedisError

from app.blobs import BlobStore
from app.domain.errors import Conflict, ErrorCode, InvalidRequest
from app.domain.models import new_artifact_id
from app.jobs.retries import tried_again
from app.metrics import Metrics
from app.store.files import BlobMeta, FileIndex
from app.store.jobs import now_ms
from app.store.storage import (
    AlreadyCounted,
    BeingDeleted,
    BlobEntry,
    BlobRecord,
    QuotaExceeded,
    ScheduledOutputs,
    StorageLedger,
    Usage,
)

log = logging.getLogger(__name__)

ORPHAN_AFTER_S = 86_400
"""A job's output scheduled at its creation and not kept by its terminal save (a process that
died between writing it and saving the job) is deleted this long after the retention an output
would have had from the job's creation: long past any step that may still keep it."""
SWEEP_BATCH = 100
SWEEP_CLAIM_S = 60.0
"""A sweeper's hold on the blobs it claimed; one that dies leaves them due again after it."""


class StorageQuotaExceeded(InvalidRequest):
    def __init__(self, usage: Usage, wanted: int, pointer: str | None = None) -> None:
        super().__init__(
            f"storing {wanted} more bytes would exceed this account's storage quota "
            f"({usage.used_bytes} of {usage.quota_bytes} bytes used); files and outputs "
            "give their bytes back when their retention ends",
            code=ErrorCode.storage_quota_exceeded,
            pointer=pointer,
            status=413,
        )


@dataclass(frozen=True)
class Retention:
    files_s: int
    outputs_s: int


class Storage:
    def __init__(
        self, blobs: BlobStore, files: FileIndex, ledger: StorageLedger, retention: Retention
    ) -> None:
        self.blobs = blobs
        self.files = files
        self.ledger = ledger
        self.retention = retention

    async def store_files(
        self, tenant_id: str, items: Sequence[tuple[BlobMeta, bytes, str | None]]
    ) -> None:
        """Store uploads or inline inputs (meta, bytes, JSON pointer): all, or none when they
        exceed the tenant's quota (``StorageQuotaExceeded`` at the first one's pointer)."""
        pointer = items[0][2] if items else None
        await self._store(tenant_id, [(m, b) for m, b, _ in items], self.retention.files_s, pointer)

    async def store_outputs(
        self, tenant_id: str, items: Sequence[tuple[BlobMeta, bytes]], *, within_s: float = 0.0
    ) -> None:
        """Store a job's outputs: all, or none when they exceed the tenant's quota. A write that
        fails (a full disk, an object store's 500) is tried again for up to ``within_s`` under
        the same reservation (``tried_again``); then the bytes are deleted and the reservation
        given back, or, where they cannot be deleted now, deleted when the reservation's
        retention ends."""
        await self._store(tenant_id, items, self.retention.outputs_s, None, within_s)

    def schedule_output(self, tenant_id: str, created_ms: int) -> BlobEntry:
        """The deletion of a job's output, scheduled with the job's creation under a new
        artifact id (``JobStore.create``): 0 bytes until the job's terminal save keeps the
        output and reschedules it (:meth:`write_scheduled`)."""
        due = created_ms + (self.retention.outputs_s + ORPHAN_AFTER_S) * 1000
        return BlobEntry(new_artifact_id(), 0, tenant_id, due)

    async def write_scheduled(
        self,
        tenant_id: str,
        items: Sequence[tuple[BlobMeta, bytes]],
        scheduled: Sequence[BlobEntry],
        *,
        within_s: float = 0.0,
    ) -> ScheduledOutputs:
        """Write outputs under the ids whose deletion their job's creation scheduled (in
        order): their quota is counted by the job's terminal save (``JobStore.save``), which
        refuses them past it; :meth:`discard` then deletes their bytes. A write that fails is
        tried again for up to ``within_s``; a write cut short leaves bytes the schedule
        deletes."""
        entries, records = self._ledger_rows(tenant_id, items, self.retention.outputs_s)
        for meta, content in items:
            put = partial(self.blobs.put, meta.id, content, meta.content_type)
            await tried_again(put, within_s=within_s, what="writing an output", about=meta.id)
        return self.ledger.scheduled(tenant_id, scheduled, entries, records)

    async def discard(self, outputs: ScheduledOutputs) -> None:
        """Delete outputs their job's save refused. Their scheduled deletion stays, so bytes
        this cannot delete now are deleted when it comes due."""
        for blob in outputs.blobs:
            with suppress(Exception):
                await self.blobs.delete(blob.blob_id)

    async def _store(
        self,
        tenant_id: str,
        items: Sequence[tuple[BlobMeta, bytes]],
        retention_s: int,
        pointer: str | None,
        within_s: float = 0.0,
    ) -> None:
        if not items:
            return
        # The quota's script writes the blobs' records too, once they fit: one command.
        entries, records = self._ledger_rows(tenant_id, items, retention_s)
        try:
            await self.ledger.reserve(tenant_id, entries, records)
        except QuotaExceeded as exc:
            raise StorageQuotaExceeded(exc.usage, exc.wanted, pointer) from exc
        except AlreadyCounted:
            # An earlier attempt of the same upload counted it under this id (the one its
            # Idempotency-Key bound) and may not have written it: the same bytes again, and
            # no undo of a reservation that is not this attempt's.
            await self._put(items)
            return
        except BeingDeleted as exc:
            raise Conflict(
                f"file {items[0][0].id} is being deleted, its retention ended; retry shortly",
                pointer=pointer,
            ) from exc
        try:
            await tried_again(
                partial(self._put, items),
                within_s=within_s,
                what="writing its bytes",
                about=items[0][0].id,
            )
        except BaseException:
            with suppress(Exception):
                await self._undo(entries)
            raise

    async def _put(self, items: Sequence[tuple[BlobMeta, bytes]]) -> None:
        if len(items) == 1:  # most jobs: no task to gather
            meta, content = items[0]
            await self.blobs.put(meta.id, content, meta.content_type)
        else:
            puts = (self.blobs.put(m.id, content, m.content_type) for m, content in items)
            await asyncio.gather(*puts)

    def _ledger_rows(
        self, tenant_id: str, items: Sequence[tuple[BlobMeta, bytes]], retention_s: int
    ) -> tuple[list[BlobEntry], list[BlobRecord]]:
        """Each blob's entry in the deletion schedule (its retention from now) and record."""
        expires = now_ms() + retention_s * 1000
        entries = [BlobEntry(meta.id, meta.size, tenant_id, expires) for meta, _ in items]
        return entries, [self.files.record(meta) for meta, _ in items]

    async def delete_files(self, tenant_id: str, metas: Sequence[BlobMeta]) -> None:
        """Delete files stored for a request that keeps none of them (a job's inline inputs,
        stored before a creation that made no job): their bytes, then their entry, their
        bytes on the quota and their record, as a sweeper does (:func:`delete_blob`). Never
        raises: a file that cannot be deleted now (the object store or the store away) is
        left to its scheduled deletion, when its retention ends."""
        for meta in metas:
            entry = BlobEntry(meta.id, meta.size, tenant_id)
            try:
                await delete_blob(self.blobs, self.ledger, entry)
            except Exception as exc:
                log.warning(
                    "file %s: not deleted now (%r); deleted when its retention ends", meta.id, exc
                )

    async def _undo(self, entries: Sequence[BlobEntry]) -> None:
        for entry in entries:
            await delete_blob(self.blobs, self.ledger, entry)

    async def usage(self, tenant_id: str) -> Usage:
        return await self.ledger.usage(tenant_id)


class Sweeper:
    """Deletes the bytes of files and outputs whose retention ended, every ``interval_s``."""

    def __init__(
        self, ledger: StorageLedger, blobs: BlobStore, metrics: Metrics, interval_s: float
    ) -> None:
        self.ledger = ledger
        self.blobs = blobs
        self.metrics = metrics
        self.interval_s = interval_s
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                while await self.sweep_once() == SWEEP_BATCH and not self._stopping.is_set():
                    pass
            except (RedisError, OSError) as exc:
                log.warning("sweeper: store unavailable (%s)", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)

    def stop(self) -> None:
        self._stopping.set()

    async def sweep_once(self) -> int:
        """Delete one batch of expired blobs; how many were claimed."""
        claimed = await self.ledger.claim_expired(now_ms(), int(SWEEP_CLAIM_S * 1000), SWEEP_BATCH)
        for entry in claimed:
            if await delete_blob(self.blobs, self.ledger, entry):
                self.metrics.storage_reclaimed.inc(entry.size)
        return len(claimed)


async def delete_blob(blobs: BlobStore, ledger: StorageLedger, entry: BlobEntry) -> bool:
    """Delete a blob's bytes, then give them back (``release_storage.lua``: its entry off the
    schedule, its bytes off the quota, its record dropped); True for the one call that gave
    them back. Bytes that cannot be deleted keep their entry: the sweeper deletes them when
    it comes due. The one way every caller deletes a stored blob."""
    await blobs.delete(entry.blob_id)
    return await ledger.release(entry)
