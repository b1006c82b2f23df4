"""The storage sweeper over the object store: expired uploads and outputs are deleted from
the bucket (SeaweedFS), counted once, and their metadata goes with them."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.jobs.storage import Retention, Storage, Sweeper
from app.metrics import Metrics
from app.store import keys
from app.store.files import BlobMeta, FileIndex
from app.store.scripts import Scripts
from app.store.storage import StorageLedger
from tests.utils.seaweedfs import S3Server, s3_client


def meta(blob_id: str, size: int) -> BlobMeta:
    return BlobMeta(id=blob_id, tenant="t1", content_type="image/png", size=size)


async def test_the_sweeper_deletes_expired_objects_from_the_bucket(
    redis_client: Redis, s3_server: S3Server
) -> None:
    blobs = s3_client(s3_server, prefix=f"sweep{uuid.uuid4().hex[:8]}")
    ledger = StorageLedger(redis_client, Scripts.register(redis_client), quota_bytes=1000)
    files = FileIndex(redis_client, file_ttl_s=60, artifact_ttl_s=60)
    storage = Storage(blobs, files, ledger, Retention(0, 0))  # due for deletion at once
    await storage.store_files("t1", [(meta("file_s3", 5), b"hello", "/file")])
    await storage.store_outputs("t1", [(meta("art_s3", 3), b"abc")])
    assert await blobs.get("file_s3") == b"hello"
    assert await blobs.get("art_s3") == b"abc"
    assert (await storage.usage("t1")).used_bytes == 8

    metrics = Metrics(CollectorRegistry())
    assert await Sweeper(ledger, blobs, metrics, interval_s=60).sweep_once() == 2
    assert await blobs.get("file_s3") is None
    assert await blobs.get("art_s3") is None
    assert (await storage.usage("t1")).used_bytes == 0
    assert await redis_client.exists(keys.file("file_s3"), keys.artifact("art_s3")) == 0
    assert metrics.registry.get_sample_value("mediagate_storage_reclaimed_bytes_total") == 8
