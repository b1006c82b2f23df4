"""Stored bytes per tenant: the storage quota, and the schedule of deletions.

Every file and output is counted in its tenant's ``storage_used`` and given an entry in
``BLOB_EXPIRIES`` (scored by when its retention ends) by one script, *before* its bytes are
written (``reserve_storage.lua``: all the blobs of one request or none, refused past the
quota). A sweeper claims due entries (``claim_expired_blobs.lua``, which moves each one's
score to the end of the claim: a sweeper that dies leaves it due again), deletes the bytes,
then releases the entry (``release_storage.lua``: takes it off the schedule, gives the bytes
back to the quota, drops the metadata). Deleting twice is harmless and only the release that
removes the entry counts, so every step can be repeated after a crash.
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


def _reserved(answer: list[Any], blobs: Sequence[BlobEntry]) -> int:
    stored, used, quota = answer
    if not int(stored):
        raise QuotaExceeded(Usage(int(used), int(quota)), sum(blob.size for blob in blobs))
    return int(used)


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
        once they fit, and not at all when they do not."""
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
