"""Stored bytes per tenant: the storage quota, and the schedule of deletions.

Every file and output is counted in its tenant's ``storage_used`` and given an entry in
``BLOB_EXPIRIES`` (scored by when its retention ends) by one script, *before* its bytes are
written (``reserve_storage.lua``: all the blobs of one request or none, refused past the
quota). The one exception is the output of a job run while its client waits: its entry is
written, at 0 bytes, by the job's creation; its bytes are written next; and the job's terminal
save counts them and reschedules the entry, or refuses them past the quota
(:class:`ScheduledOutputs`); a first step that writes nothing drops the entry in its save.
Either way no byte is on disk without its deletion scheduled. A sweeper claims due entries
(``claim_expired_blobs.lua``, which moves each one's score to the end of the claim: a sweeper
that dies leaves it due again), deletes the bytes, then releases the entry
(``release_storage.lua``: takes it off the schedule, gives the bytes back to the quota, drops
the metadata). Deleting twice is harmless and only the release that removes the entry counts,
so every step can be repeated after a crash. A blob is counted once: an upload stored again
under the id its ``Idempotency-Key`` bound finds its record and is not counted again (its
bytes are written again), and is refused while a sweeper deletes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.store import keys
from app.store.scripts import Scripts


@dataclass(frozen=True)
class BlobEntry:
    """One stored blob as the schedule knows it."""

    blob_id: str
    size: int
    tenant: str
    expires_ms: int = 0

    @property
    def member(self) -> str:
        return f"{self.blob_id}|{self.size}|{self.tenant}"

    @classmethod
    def parse(cls, member: str | bytes) -> BlobEntry:
        text = member.decode() if isinstance(member, bytes) else member
        blob_id, size, tenant = text.split("|", 2)
        return cls(blob_id, int(size), tenant)

    @property
    def metadata_key(self) -> str:
        if self.blob_id.startswith("file_"):
            return keys.file(self.blob_id)
        return keys.artifact(self.blob_id)


@dataclass(frozen=True)
class BlobRecord:
    """A blob's metadata record as ``FileIndex`` keeps it: written with its reservation."""

    key: str
    value: str
    ttl_s: int


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    quota_bytes: int


class QuotaExceeded(Exception):
    def __init__(self, usage: Usage, wanted: int) -> None:
        super().__init__(f"{wanted} bytes more would exceed the quota")
        self.usage = usage
        self.wanted = wanted


class AlreadyCounted(Exception):
    """A blob's record exists already: an earlier attempt of the same upload counted it (the
    id its ``Idempotency-Key`` bound). Nothing was counted again."""


class BeingDeleted(Exception):
    """A blob's record is gone but its deletion is still scheduled: its retention ended and a
    sweeper is deleting it. Nothing was counted; its id is free once the sweeper is done."""


class OutputUnscheduled(Exception):
    """An output's deletion entry is no longer as the job's creation scheduled it (a sweeper
    claimed it): its bytes may be deleted, so it cannot be kept."""


@dataclass(frozen=True)
class ScheduledOutputs:
    """Outputs written under ids whose deletion the job's creation scheduled (``scheduled``,
    entries of 0 bytes), for the job's terminal save to count against the tenant's quota and
    to reschedule as ``blobs`` (their sizes, the end of their retention), with their
    ``records``: one command for the save and the storage (``save_job.lua``)."""

    tenant: str
    scheduled: Sequence[BlobEntry]
    blobs: Sequence[BlobEntry]
    records: Sequence[BlobRecord]
    default_quota_bytes: int

    def script_keys(self) -> list[str]:
        """After the schedule's own key (``keys.BLOB_EXPIRIES``)."""
        head = [keys.storage_used(self.tenant), keys.tenant(self.tenant)]
        return head + [record.key for record in self.records]

    def script_args(self) -> list[str | int]:
        args: list[str | int] = [self.default_quota_bytes, len(self.blobs)]
        for early, blob in zip(self.scheduled, self.blobs, strict=True):
            args += [early.member, early.expires_ms, blob.member, blob.size, blob.expires_ms]
        for record in self.records:
            args += [record.value, record.ttl_s]
        return args

    @property
    def wanted(self) -> int:
        return sum(blob.size for blob in self.blobs)


def outputs_refused(reply: str, outputs: ScheduledOutputs) -> Exception | None:
    """What a terminal save's refusal of its outputs means (None: not about them)."""
    if reply.startswith("quota "):
        _, used, quota, _wanted = reply.split()
        return QuotaExceeded(Usage(int(used), int(quota)), outputs.wanted)
    if reply == "unscheduled":
        return OutputUnscheduled(reply)
    return None


def _reserved(answer: list[Any], blobs: Sequence[BlobEntry]) -> int:
    stored, used, quota = (int(value) for value in answer)
    if stored == 2:
        raise AlreadyCounted()
    if stored == 3:
        raise BeingDeleted()
    if not stored:
        raise QuotaExceeded(Usage(used, quota), sum(blob.size for blob in blobs))
    return used


class StorageLedger:
    """Each tenant's bytes against its quota: ``storage_quota_bytes`` on its record when set
    (admin API), else ``quota_bytes``."""

    def __init__(self, redis: Redis, scripts: Scripts, *, quota_bytes: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.quota_bytes = quota_bytes

    async def reserve(
        self,
        tenant_id: str,
        blobs: Sequence[BlobEntry],
        records: Sequence[BlobRecord] = (),
    ) -> int:
        """Count ``blobs`` against the tenant's quota and schedule their deletion; the bytes
        used after. ``QuotaExceeded`` (and nothing counted) when they do not fit. With
        ``records`` (one per blob, in order), each blob's record is written in the same script
        once they fit, and not at all when they do not; a blob whose record exists is not
        counted again (``AlreadyCounted``), nor one still being deleted (``BeingDeleted``)."""
        assert not records or len(records) == len(blobs)
        args: list[str | int] = [self.quota_bytes]
        for blob in blobs:
            args += [blob.member, blob.size, blob.expires_ms]
        for record in records:
            args += [record.value, record.ttl_s]
        script_keys = [keys.storage_used(tenant_id), keys.BLOB_EXPIRIES, keys.tenant(tenant_id)]
        script_keys += [record.key for record in records]
        answer = await self.scripts.reserve_storage(keys=script_keys, args=args)
        return _reserved(answer, blobs)

    def scheduled(
        self,
        tenant_id: str,
        scheduled: Sequence[BlobEntry],
        blobs: Sequence[BlobEntry],
        records: Sequence[BlobRecord],
    ) -> ScheduledOutputs:
        """``blobs``, written under the ids of ``scheduled``, for a job's terminal save to
        count (see :class:`ScheduledOutputs`)."""
        return ScheduledOutputs(tenant_id, scheduled, blobs, records, self.quota_bytes)

    async def claim_expired(self, now_ms: int, claim_ms: int, limit: int) -> list[BlobEntry]:
        """Up to ``limit`` blobs whose retention ended, held for ``claim_ms``."""
        due = await self.scripts.claim_expired_blobs(
            keys=[keys.BLOB_EXPIRIES], args=[now_ms, now_ms + claim_ms, limit]
        )
        return [BlobEntry.parse(member) for member in due]

    async def release(self, blob: BlobEntry) -> bool:
        """The blob's bytes are gone: True for the one call that gives them back."""
        released = await self.scripts.release_storage(
            keys=[keys.BLOB_EXPIRIES, keys.storage_used(blob.tenant), blob.metadata_key],
            args=[blob.member, blob.size],
        )
        return bool(int(released))

    async def usage(self, tenant_id: str) -> Usage:
        """Bytes kept and the quota: the tenant's own, or the default."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.storage_used(tenant_id))
            pipe.hget(keys.tenant(tenant_id), "storage_quota_bytes")
            used, own = await pipe.execute()
        return Usage(int(used or 0), int(own) if own is not None else self.quota_bytes)
