"""A submission's inline media is stored as files of its tenant before its job is created; a
creation that makes no job — refused for credits, job slots or the rate, or finding the job
an earlier attempt of the same ``Idempotency-Key`` made — deletes them and gives their bytes
back to the tenant's storage quota, through the app over a real Redis and blob store. A
deletion that fails leaves them to the sweeper and changes no answer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.blobs.base import BlobStoreError
from app.config import SANDBOX_TENANT_KEY
from app.domain.models import JobRecord
from app.domain.operations import Operation, RemoveBackground
from app.gateway import Gateway
from app.jobs.envelope import Envelope, JobOptions
from app.jobs.storage import Sweeper
from app.store import keys
from app.store.files import BlobMeta
from app.store.rate_limits import RateCheck, RateRefused
from app.store.tenants import Tenant
from tests.api.test_idempotency import past_the_lock
from tests.utils.deadlines import JOB_S
from tests.utils.media import png_b64

AUTH = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
TENANT = "sandbox"
REMOVE = "/v1/images/remove-background"
INLINE = {"image": {"data": png_b64(48, 40)}, "provider": "imagepig"}


@dataclass(frozen=True)
class Kept:
    """What a tenant keeps in files: the bytes counted, the files scheduled for deletion, their
    records, and the files whose bytes the blob store holds."""

    used_bytes: int
    scheduled: frozenset[str]
    records: frozenset[str]
    blobs: frozenset[str]


async def kept(gw: Gateway, tenant_id: str) -> Kept:
    members = [str(m) for m in await gw.redis.zrange(keys.BLOB_EXPIRIES, 0, -1)]
    scheduled = {
        m.split("|")[0] for m in members if m.startswith("file_") and m.endswith(f"|{tenant_id}")
    }
    records = set()
    async for key in gw.redis.scan_iter(keys.file("*")):
        raw = await gw.redis.get(key)
        meta = BlobMeta.model_validate_json(raw) if raw else None
        if meta is not None and meta.tenant == tenant_id:
            records.add(meta.id)
    root = gw.settings.data_dir / "blobs"
    blobs = {path.name for path in root.rglob("file_*") if path.is_file()}
    used = (await gw.storage.usage(tenant_id)).used_bytes
    return Kept(used, frozenset(scheduled), frozenset(records), frozenset(blobs))


def inline_file(record: JobRecord) -> str:
    """The file a job's creation was given for its inline image."""
    return str(record.params["image"]["file_id"])


async def one_slot_tenant(gw: Gateway) -> tuple[Tenant, dict[str, str]]:
    """A tenant with one job slot, taken by a queued job (no worker runs here)."""
    tenant = await gw.tenants.create("one slot", max_concurrent_jobs=1)
    await gw.accounting.ledger.grant(tenant.id, 1000, "test")
    _, key = await gw.tenants.add_key(tenant.id)
    return tenant, {"Authorization": f"Bearer {key}"}


async def test_a_retry_that_finds_its_job_made_keeps_no_copy_of_its_inline_media(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt stores its image and stalls before its creation, past its key's lock
    (shortened here); the retry, told the job may exist, finds none yet, stores its own copy
    of the image, and its creation finds the job the first attempt made meanwhile. The retry
    answers that job as it stands, and the tenant keeps the first attempt's file only."""
    gw, client = gateway
    monkeypatch.setattr(gw.idempotency, "lock_ms", 300)
    real_create = gw.jobs.store.create
    records: list[JobRecord] = []
    stalled, go, made = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def create(record: JobRecord, **kwargs: Any) -> object:
        records.append(record)
        if len(records) == 1:  # the first attempt, slow: its creation comes past its lock
            stalled.set()
            await go.wait()
            answer = await real_create(record, **kwargs)
            made.set()
            return answer
        go.set()  # the retry's creation runs once the first attempt's job exists
        await made.wait()
        return await real_create(record, **kwargs)

    monkeypatch.setattr(gw.jobs.store, "create", create)
    headers = {**AUTH, "Idempotency-Key": "inline-1"}
    first = asyncio.create_task(client.post(REMOVE, json=INLINE, headers=headers))
    try:
        await asyncio.wait_for(stalled.wait(), JOB_S)
        before = await kept(gw, TENANT)
        assert inline_file(records[0]) in before.blobs

        again = await past_the_lock(client, REMOVE, headers, json=INLINE)
        assert again.status_code == 202, again.text
        first_answer = await asyncio.wait_for(first, JOB_S)
    finally:
        go.set()
        if not first.done():
            first.cancel()
    assert first_answer.status_code == 202, first_answer.text
    assert len(records) == 2 and records[0].job.id == records[1].job.id
    job = again.json()
    assert job["id"] == records[0].job.id and job["status"] == "queued"
    assert job["input"]["image"] == {"file_id": inline_file(records[0])}
    assert job == first_answer.json()
    assert await gw.redis.zrange(keys.tenant_jobs(TENANT), 0, -1) == [job["id"]]
    assert await kept(gw, TENANT) == before
    retry_file = inline_file(records[1])
    assert retry_file not in before.blobs
    assert await gw.files.file(retry_file) is None


async def test_inline_media_of_a_job_refused_for_full_job_slots_is_not_kept(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    """Job slots are not checked before the media is stored: the creation refuses the job
    (429), and the image stored for it is deleted, its bytes given back."""
    gw, client = gateway
    tenant, auth = await one_slot_tenant(gw)
    taken = await client.post("/v1/images/generate", json={"prompt": "a pig"}, headers=auth)
    assert taken.status_code == 202, taken.text
    before = await kept(gw, tenant.id)

    for _ in range(3):  # as a client retrying its 429, or a batch's driver its item, would
        refused = await client.post(REMOVE, json=INLINE, headers=auth)
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "rate_limited"
        assert refused.json()["scope"] == "concurrent_jobs"
    assert await kept(gw, tenant.id) == before
    assert await gw.redis.zrange(keys.tenant_jobs(tenant.id), 0, -1) == [taken.json()["id"]]


async def test_inline_media_of_a_job_refused_for_credits_at_its_creation_is_not_kept(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The balance covers the job when the request is checked, then is spent before its
    creation (a debit meanwhile): the creation refuses it (402) and the image stored for it
    is deleted."""
    gw, client = gateway
    ledger = gw.accounting.ledger
    real_create = gw.jobs.store.create
    records: list[JobRecord] = []

    async def create(record: JobRecord, **kwargs: Any) -> object:
        records.append(record)
        available = (await ledger.account(TENANT)).available
        await ledger.debit(TENANT, available, "spent meanwhile")
        return await real_create(record, **kwargs)

    monkeypatch.setattr(gw.jobs.store, "create", create)
    before = await kept(gw, TENANT)
    refused = await client.post(REMOVE, json=INLINE, headers=AUTH)
    assert refused.status_code == 402, refused.text
    assert refused.json()["code"] == "insufficient_credits"
    assert len(records) == 1
    assert await kept(gw, TENANT) == before
    assert await gw.files.file(inline_file(records[0])) is None


async def test_inline_media_of_a_job_refused_for_its_rate_at_its_creation_is_not_kept(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    """A submission whose rate check goes with its creation, refused there: nothing kept."""
    gw, _ = gateway
    tenant = await gw.tenants.get(TENANT)
    assert tenant is not None
    rate = RateCheck("tenant:inline", 1, 1)
    assert (await gw.rate_limiter.check(rate.key, 1, 1)).allowed  # the bucket's one request
    before = await kept(gw, TENANT)
    with pytest.raises(RateRefused):
        await gw.jobs.submit(
            tenant,
            Operation.image_remove_background,
            RemoveBackground.model_validate({"image": INLINE["image"]}),
            Envelope(provider="imagepig"),
            options=JobOptions(rate=rate),
        )
    assert rate.sent
    assert await kept(gw, TENANT) == before


async def test_inline_media_that_cannot_be_deleted_is_left_to_the_sweeper(
    gateway: tuple[Gateway, httpx.AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The object store is away as the refused job's image is deleted: the answer is the same
    429, and the file stays scheduled, counted and on disk until its retention ends, when the
    sweeper deletes it and gives its bytes back."""
    gw, client = gateway
    tenant, auth = await one_slot_tenant(gw)
    taken = await client.post("/v1/images/generate", json={"prompt": "a pig"}, headers=auth)
    assert taken.status_code == 202, taken.text
    before = await kept(gw, tenant.id)
    real_delete = gw.blobs.delete
    deletes: list[str] = []

    async def delete(blob_id: str) -> None:
        deletes.append(blob_id)
        raise BlobStoreError("object store unreachable")

    monkeypatch.setattr(gw.blobs, "delete", delete)
    refused = await client.post(REMOVE, json=INLINE, headers=auth)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limited"
    [left] = deletes
    assert f"file {left}: not deleted now" in caplog.text
    after = await kept(gw, tenant.id)
    assert after.scheduled == before.scheduled | {left}
    assert after.records == before.records | {left}
    assert after.blobs == before.blobs | {left}
    assert after.used_bytes > before.used_bytes

    monkeypatch.setattr(gw.blobs, "delete", real_delete)
    member = f"{left}|{after.used_bytes - before.used_bytes}|{tenant.id}"
    due = await gw.redis.zscore(keys.BLOB_EXPIRIES, member)
    retention_ms = gw.settings.file_retention_s * 1000
    assert due is not None and due > time.time() * 1000 + retention_ms - JOB_S * 1000
    sweeper = Sweeper(gw.storage.ledger, gw.blobs, gw.metrics, 60)
    monkeypatch.setattr("app.jobs.storage.now_ms", lambda: int(due) + 1)
    assert await sweeper.sweep_once() == 1
    assert await kept(gw, tenant.id) == before


async def test_a_batch_item_waiting_for_a_job_slot_keeps_no_copy_of_its_inline_media(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    """A batch's driver starts an item with inline media while its tenant's one job slot is
    taken: each pass stores the image, is refused (the item waits for a slot), and keeps
    nothing of it."""
    gw, client = gateway
    tenant, auth = await one_slot_tenant(gw)
    taken = await client.post("/v1/images/generate", json={"prompt": "a pig"}, headers=auth)
    assert taken.status_code == 202, taken.text
    body = {"operation": "image.remove_background", "items": [INLINE]}
    created = await client.post("/v1/batches", json=body, headers=auth)
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    before = await kept(gw, tenant.id)
    driver = gw.worker.batches
    assert driver is not None
    for _ in range(3):
        await driver.advance(batch_id)
    batch = (await client.get(f"/v1/batches/{batch_id}", headers=auth)).json()
    assert batch["status"] != "completed" and batch["counts"]["failed"] == 0
    assert await kept(gw, tenant.id) == before
    assert await gw.redis.zrange(keys.tenant_jobs(tenant.id), 0, -1) == [taken.json()["id"]]
