"""The storage quota and the deletion schedule on a real Redis: ``reserve_storage.lua``,
``claim_expired_blobs.lua`` and ``release_storage.lua``, and the sweeper over a real disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.blobs import LocalBlobStore
from app.jobs.storage import Retention, Storage, StorageQuotaExceeded, Sweeper
from app.metrics import Metrics
from app.store import keys
from app.store.files import BlobMeta, FileIndex
from app.store.jobs import now_ms
from app.store.scripts import Scripts
from app.store.storage import (
    AlreadyCounted,
    BeingDeleted,
    BlobEntry,
    BlobRecord,
    QuotaExceeded,
    StorageLedger,
)

QUOTA = 1000


def ledger(redis: Redis, quota: int = QUOTA) -> StorageLedger:
    return StorageLedger(redis, Scripts.register(redis), quota_bytes=quota)


def entry(blob_id: str, size: int, expires_ms: int = 1000, tenant: str = "t1") -> BlobEntry:
    return BlobEntry(blob_id, size, tenant, expires_ms)


async def test_reserve_counts_bytes_and_schedules_each_blob(redis_client: Redis) -> None:
    store = ledger(redis_client)
    assert await store.reserve("t1", [entry("file_a", 300, 5000), entry("art_b", 200, 7000)]) == 500
    assert (await store.usage("t1")).used_bytes == 500
    scheduled = await redis_client.zrange(keys.BLOB_EXPIRIES, 0, -1, withscores=True)
    assert scheduled == [("file_a|300|t1", 5000.0), ("art_b|200|t1", 7000.0)]
    assert (await store.usage("t2")).used_bytes == 0


async def test_a_request_beyond_the_quota_stores_none_of_its_blobs(redis_client: Redis) -> None:
    store = ledger(redis_client)
    await store.reserve("t1", [entry("file_a", 600)])
    with pytest.raises(QuotaExceeded) as refused:
        await store.reserve("t1", [entry("file_b", 300), entry("file_c", 300)])
    assert refused.value.usage.used_bytes == 600
    assert refused.value.wanted == 600
    assert (await store.usage("t1")).used_bytes == 600
    assert await redis_client.zcard(keys.BLOB_EXPIRIES) == 1
    assert await store.reserve("t1", [entry("file_d", 400)]) == QUOTA  # exactly full fits


async def test_records_are_written_with_the_reservation_and_only_when_it_fits(
    redis_client: Redis,
) -> None:
    """With their records, a reservation writes each blob's record (``SET … EX``) in the same
    script once the blobs fit; refused, no record is written."""
    store = ledger(redis_client)
    records = [
        BlobRecord(keys.file("file_a"), '{"id": "file_a"}', 600),
        BlobRecord(keys.artifact("art_b"), '{"id": "art_b"}', 900),
    ]
    blobs = [entry("file_a", 300, 5000), entry("art_b", 200, 7000)]
    assert await store.reserve("t1", blobs, records) == 500
    assert await redis_client.get(keys.file("file_a")) == '{"id": "file_a"}'
    assert await redis_client.get(keys.artifact("art_b")) == '{"id": "art_b"}'
    assert 0 < await redis_client.ttl(keys.file("file_a")) <= 600
    assert 600 < await redis_client.ttl(keys.artifact("art_b")) <= 900
    scheduled = await redis_client.zrange(keys.BLOB_EXPIRIES, 0, -1, withscores=True)
    assert scheduled == [("file_a|300|t1", 5000.0), ("art_b|200|t1", 7000.0)]
    too_big = [BlobRecord(keys.file("file_c"), "{}", 600)]
    with pytest.raises(QuotaExceeded):
        await store.reserve("t1", [entry("file_c", 600)], too_big)
    assert await redis_client.exists(keys.file("file_c")) == 0
    assert (await store.usage("t1")).used_bytes == 500


async def test_a_blob_is_counted_once_under_its_id(redis_client: Redis) -> None:
    """An upload stored again under the same id (its Idempotency-Key's binding) finds its
    record and counts nothing more; while a sweeper deletes it (record gone, entry still
    scheduled) it is refused, and once released the id counts afresh."""
    store = ledger(redis_client)
    record = [BlobRecord(keys.file("file_a"), '{"id": "file_a"}', 600)]
    assert await store.reserve("t1", [entry("file_a", 300, 5000)], record) == 300
    with pytest.raises(AlreadyCounted):
        await store.reserve("t1", [entry("file_a", 300, 9000)], record)
    await redis_client.delete(keys.file("file_a"))  # its retention ended: a sweeper's turn
    with pytest.raises(BeingDeleted):
        await store.reserve("t1", [entry("file_a", 300, 9000)], record)
    assert (await store.usage("t1")).used_bytes == 300
    scheduled = await redis_client.zrange(keys.BLOB_EXPIRIES, 0, -1, withscores=True)
    assert scheduled == [("file_a|300|t1", 5000.0)]
    assert await store.release(entry("file_a", 300))
    assert await store.reserve("t1", [entry("file_a", 300, 9000)], record) == 300


async def test_a_tenant_s_own_quota_wins_over_the_default(redis_client: Redis) -> None:
    store = ledger(redis_client)
    await redis_client.hset(keys.tenant("t1"), "storage_quota_bytes", 100)
    with pytest.raises(QuotaExceeded) as refused:
        await store.reserve("t1", [entry("file_a", 150)])
    assert refused.value.usage.quota_bytes == 100
    assert (await store.usage("t1")).quota_bytes == 100
    assert (await store.usage("t2")).quota_bytes == QUOTA
    assert await store.reserve("t2", [entry("file_b", 150)]) == 150


async def test_concurrent_reservations_never_exceed_the_quota(
    redis_client: Redis, separate_clients: list[Redis]
) -> None:
    """Five clients (as five processes) race 50 reservations of 70 bytes for 1000."""
    stores = [ledger(client) for client in separate_clients]

    async def one(i: int) -> bool:
        try:
            await stores[i % len(stores)].reserve("t1", [entry(f"file_{i}", 70)])
        except QuotaExceeded:
            return False
        return True

    accepted = sum(await asyncio.gather(*(one(i) for i in range(50))))
    assert accepted == QUOTA // 70
    assert (await ledger(redis_client).usage("t1")).used_bytes == accepted * 70
    assert await redis_client.zcard(keys.BLOB_EXPIRIES) == accepted


async def test_claim_hands_out_due_blobs_once_until_the_claim_lapses(redis_client: Redis) -> None:
    store = ledger(redis_client)
    await store.reserve("t1", [entry("file_a", 10, 1000), entry("file_b", 10, 9000)])
    first = await store.claim_expired(now_ms=2000, claim_ms=500, limit=10)
    assert [e.blob_id for e in first] == ["file_a"]
    assert await store.claim_expired(now_ms=2100, claim_ms=500, limit=10) == []
    # the claimant died: its claim lapses and another sweeper gets the blob
    again = await store.claim_expired(now_ms=2600, claim_ms=500, limit=10)
    assert again == [BlobEntry("file_a", 10, "t1")]


async def test_release_gives_the_bytes_back_once(redis_client: Redis) -> None:
    store = ledger(redis_client)
    blob = entry("file_a", 300)
    await store.reserve("t1", [blob, entry("file_b", 100)])
    await redis_client.set(keys.file("file_a"), "{}")
    assert await store.release(blob) is True
    assert await store.release(blob) is False  # a second sweeper, or a retry after a crash
    assert (await store.usage("t1")).used_bytes == 100
    assert await redis_client.exists(keys.file("file_a")) == 0
    assert await redis_client.zcard(keys.BLOB_EXPIRIES) == 1
    await store.release(entry("file_b", 100))
    assert await redis_client.exists(keys.storage_used("t1")) == 0


def _storage(redis: Redis, root: Path, quota: int = QUOTA) -> tuple[Storage, LocalBlobStore]:
    blobs = LocalBlobStore(root)
    files = FileIndex(redis, file_ttl_s=60, artifact_ttl_s=60)
    return Storage(blobs, files, ledger(redis, quota), Retention(0, 0)), blobs


def _meta(blob_id: str, size: int) -> BlobMeta:
    return BlobMeta(id=blob_id, tenant="t1", content_type="image/png", size=size)


async def test_outputs_beyond_the_quota_are_not_written(
    redis_client: Redis, tmp_path: Path
) -> None:
    storage, blobs = _storage(redis_client, tmp_path)
    with pytest.raises(StorageQuotaExceeded) as refused:
        await storage.store_outputs("t1", [(_meta("art_x", 1200), b"x" * 1200)])
    assert refused.value.status == 413
    assert refused.value.code == "storage_quota_exceeded"
    assert list(tmp_path.rglob("art_*")) == []
    assert await redis_client.exists(keys.artifact("art_x")) == 0
    assert (await storage.usage("t1")).used_bytes == 0


async def test_stored_outputs_have_their_record_bytes_and_count(
    redis_client: Redis, tmp_path: Path
) -> None:
    storage, blobs = _storage(redis_client, tmp_path)
    metas = [_meta("art_a", 300), _meta("art_b", 200)]
    await storage.store_outputs("t1", [(metas[0], b"a" * 300), (metas[1], b"b" * 200)])
    for meta, byte in zip(metas, (b"a", b"b"), strict=True):
        assert await blobs.get(meta.id) == byte * meta.size
        record = await redis_client.get(keys.artifact(meta.id))
        assert record is not None
        assert BlobMeta.model_validate_json(record) == meta
        assert 0 < await redis_client.ttl(keys.artifact(meta.id)) <= 60
    assert (await storage.usage("t1")).used_bytes == 500


async def test_the_sweeper_deletes_expired_bytes_and_counts_them_once(
    redis_client: Redis, tmp_path: Path
) -> None:
    storage, blobs = _storage(redis_client, tmp_path)
    await storage.store_files("t1", [(_meta("file_a", 5), b"hello", "/file")])
    await storage.store_outputs("t1", [(_meta("art_b", 3), b"abc")])
    assert len(_blob_files(tmp_path)) == 2
    metrics = Metrics(CollectorRegistry())
    sweepers = [Sweeper(storage.ledger, blobs, metrics, interval_s=60) for _ in range(2)]
    claimed = await asyncio.gather(*(s.sweep_once() for s in sweepers))
    assert sum(claimed) == 2  # each blob went to one sweeper
    assert _blob_files(tmp_path) == []
    assert (await storage.usage("t1")).used_bytes == 0
    assert await redis_client.exists(keys.file("file_a"), keys.artifact("art_b")) == 0
    assert metrics.registry.get_sample_value("mediagate_storage_reclaimed_bytes_total") == 8
    assert await sweepers[0].sweep_once() == 0


async def test_a_sweep_cut_short_is_finished_by_the_next(
    redis_client: Redis, tmp_path: Path
) -> None:
    """A sweeper that deleted the bytes and died before releasing: the entry comes back when
    its claim lapses; deleting again is harmless and the bytes are counted once."""
    storage, blobs = _storage(redis_client, tmp_path)
    await storage.store_files("t1", [(_meta("file_a", 5), b"hello", "/file")])
    [claimed] = await storage.ledger.claim_expired(now_ms=now_ms() + 1, claim_ms=1, limit=10)
    await blobs.delete(claimed.blob_id)  # ...and the process dies here
    await asyncio.sleep(0.05)
    metrics = Metrics(CollectorRegistry())
    assert await Sweeper(storage.ledger, blobs, metrics, interval_s=60).sweep_once() == 1
    assert (await storage.usage("t1")).used_bytes == 0
    assert metrics.registry.get_sample_value("mediagate_storage_reclaimed_bytes_total") == 5


def _blob_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]
