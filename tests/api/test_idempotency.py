"""``Idempotency-Key`` on job submissions, through the app over a real Redis: a key that has
created a job stays bound to it, whatever fails after the creation, and is held for longer
than the longest ``Prefer: wait`` — one key, one job, one credit hold. The key is bound to
the job's id before the job is made, so an attempt whose outcome is unknown (the response not
stored, the creation's reply lost, the request cancelled, its process dead) leaves a retry to
find that job rather than make a second; batches and uploads likewise."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.blobs.base import BlobStoreError
from app.config import SANDBOX_TENANT_KEY
from app.domain.errors import NotFound
from app.domain.models import JobRecord, JobStatus
from app.domain.operations import GenerateImage, Operation
from app.gateway import Gateway
from app.jobs.envelope import Envelope, JobOptions
from app.store import keys
from app.store.credits import CreditAccount
from app.store.jobs import Stored
from app.store.storage import BlobEntry, BlobRecord
from tests.utils.deadlines import JOB_S
from tests.utils.in_process import in_process_gateway
from tests.utils.media import png_bytes

AUTH = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
GENERATE = "/v1/images/generate"
PROMPT = {"prompt": "a lighthouse at dusk", "provider": "imagepig"}
TENANT = "sandbox"


def record_key(key: str) -> str:
    return keys.idempotency(TENANT, hashlib.sha256(key.encode()).hexdigest())


@pytest.mark.parametrize(
    "error",
    [RedisConnectionError("connection reset"), BlobStoreError("object store unreachable")],
    ids=["store", "object_store"],
)
@pytest.mark.parametrize("read_fails", [False, True], ids=["read", "unreadable"])
async def test_a_failure_after_the_job_is_created_keeps_the_key_on_that_job(
    gateway: tuple[Gateway, httpx.AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    read_fails: bool,
) -> None:
    """The inline step of a ``Prefer: wait`` submission fails once the job and its hold exist
    (and, in one case, so does reading the job back): the answer is that job, 202, and a retry
    with the same key replays it rather than creating and holding credits for a second."""
    gw, client = gateway
    runner, store = gw.jobs.runner, gw.jobs.store
    real_get = store.get
    calls = {"step": 0, "failed_reads": 0}

    async def step(stored: Stored) -> Stored:
        calls["step"] += 1
        raise error

    async def get(job_id: str) -> Stored | None:
        if read_fails and calls["step"] and not calls["failed_reads"]:
            calls["failed_reads"] += 1
            raise RedisConnectionError("connection reset")
        return await real_get(job_id)

    monkeypatch.setattr(runner, "step", step)
    monkeypatch.setattr(store, "get", get)
    before = await gw.accounting.ledger.account(TENANT)
    headers = {**AUTH, "Idempotency-Key": "order-42", "Prefer": "wait=5"}

    first = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    job = first.json()
    assert job["status"] == "running" and job["credits"]["reserved"] > 0
    assert first.headers["location"] == f"/v1/jobs/{job['id']}"

    again = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == job
    assert calls == {"step": 1, "failed_reads": int(read_fails)}
    assert await gw.redis.zrange(keys.tenant_jobs(TENANT), 0, -1) == [job["id"]]
    after = await gw.accounting.ledger.account(TENANT)
    assert after.reserved - before.reserved == job["credits"]["reserved"]
    assert after.balance == before.balance


async def test_a_key_is_held_for_longer_than_the_longest_wait(
    redis_url: str, redis_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a ``Prefer: wait`` submission runs, its key's lock outlasts the longest wait the
    gateway allows (a configured one, not the default): the request cannot outlive its lock
    and let a retry run it again."""
    longest = 90
    async with in_process_gateway(redis_url, tmp_path, sandbox=True, max_prefer_wait_s=longest) as (
        gw,
        client,
    ):
        locks: list[int] = []

        async def step(stored: Stored) -> Stored:
            locks.append(await redis_client.pttl(record_key("waiting")))
            return stored

        monkeypatch.setattr(gw.jobs.runner, "step", step)
        headers = {**AUTH, "Idempotency-Key": "waiting", "Prefer": "wait=1"}
        answer = await client.post(GENERATE, json=PROMPT, headers=headers)
        assert answer.status_code in (200, 202)
        (lock,) = locks  # the lock is the key's, whatever this request's own wait
        assert lock > longest * 1000


async def test_a_failure_while_waiting_for_the_job_keeps_the_key_on_it(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step has run and the request waits for the job's end when the store goes away: the
    answer is the job as it stands, and the retry replays it."""
    gw, client = gateway
    waits: list[str] = []

    async def step(stored: Stored) -> Stored:
        return stored  # the job goes on: the request waits for it

    async def status_of(job_id: str) -> JobStatus | None:
        waits.append(job_id)
        raise RedisConnectionError("connection reset")

    monkeypatch.setattr(gw.jobs.runner, "step", step)
    monkeypatch.setattr(gw.jobs.store, "status_of", status_of)
    headers = {**AUTH, "Idempotency-Key": "order-43", "Prefer": "wait=5"}
    first = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert first.status_code == 202
    job = first.json()
    assert waits == [job["id"]]
    again = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == job
    assert await gw.redis.zrange(keys.tenant_jobs(TENANT), 0, -1) == [job["id"]]
    assert (await gw.accounting.ledger.account(TENANT)).reserved == job["credits"]["reserved"]


async def one_job_one_hold(gw: Gateway, before: CreditAccount, job_id: str) -> None:
    """The tenant has one job, ``job_id``, and one credit hold, for it; nothing charged."""
    assert await gw.redis.zrange(keys.tenant_jobs(TENANT), 0, -1) == [job_id]
    assert await gw.redis.smembers(keys.credit_holds(TENANT)) == {job_id}
    stored = await gw.jobs.store.get(job_id)
    assert stored is not None
    after = await gw.accounting.ledger.account(TENANT)
    assert after.reserved - before.reserved == stored.record.job.credits.reserved > 0
    assert after.balance == before.balance


async def past_the_lock(
    client: httpx.AsyncClient, path: str, headers: Mapping[str, str], **body: Any
) -> httpx.Response:
    """The answer to a retry once the key's earlier attempt no longer holds it (``409`` until
    then)."""
    deadline = time.monotonic() + JOB_S
    while True:
        answer = await client.post(path, headers=headers, **body)
        if answer.status_code != 409 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)


async def test_a_response_not_stored_against_its_key_leaves_the_key_on_its_job(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job is created, then the store fails as its response is stored against the key: the
    job is still the answer, and the retry answers that job as it stands (and is replayed
    after), rather than a 409 until the key's lock lapses and then a second job."""
    gw, client = gateway
    real_complete = gw.idempotency.complete
    failed: list[int] = []

    async def complete(*args: Any, **kwargs: Any) -> bool:
        if not failed:
            failed.append(args[3])
            raise RedisConnectionError("connection reset")
        return await real_complete(*args, **kwargs)

    monkeypatch.setattr(gw.idempotency, "complete", complete)
    before = await gw.accounting.ledger.account(TENANT)
    headers = {**AUTH, "Idempotency-Key": "order-50"}

    first = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert failed == [202] and first.status_code == 202
    job = first.json()
    again = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert again.status_code == 202 and "idempotent-replayed" not in again.headers
    assert again.json()["id"] == job["id"] and again.json()["status"] == "queued"
    replayed = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == again.json()
    await one_job_one_hold(gw, before, job["id"])


async def test_a_lost_creation_reply_leaves_the_key_on_the_job_it_created(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis runs the creation, and the connection drops before its reply: the request fails
    (503), and the retry with the same key answers the job the lost creation made."""
    gw, client = gateway
    real_create = gw.jobs.store.create
    made: list[str] = []

    async def create(record: JobRecord, **kwargs: Any) -> object:
        created = await real_create(record, **kwargs)
        if not made:
            made.append(record.job.id)
            raise RedisConnectionError("connection lost before the reply")
        return created

    monkeypatch.setattr(gw.jobs.store, "create", create)
    before = await gw.accounting.ledger.account(TENANT)
    headers = {**AUTH, "Idempotency-Key": "order-51"}

    first = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert first.status_code == 503 and len(made) == 1
    again = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == made[0] and again.json()["status"] == "queued"
    assert again.headers["location"] == f"/v1/jobs/{made[0]}"
    replayed = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == again.json()
    await one_job_one_hold(gw, before, made[0])


async def test_a_request_cancelled_after_its_job_is_created_leaves_the_key_on_it(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``Prefer: wait`` request is cancelled (its client went away) while its job's first
    step runs: the retry with the same key — without the wait, the same request — answers
    that job."""
    gw, client = gateway
    stepping, release = asyncio.Event(), asyncio.Event()
    stepped: list[str] = []

    async def step(stored: Stored) -> Stored:
        stepped.append(stored.record.job.id)
        stepping.set()
        await release.wait()
        return stored

    monkeypatch.setattr(gw.jobs.runner, "step", step)
    before = await gw.accounting.ledger.account(TENANT)
    key = {**AUTH, "Idempotency-Key": "order-52"}
    request = asyncio.create_task(
        client.post(GENERATE, json=PROMPT, headers={**key, "Prefer": "wait=30"})
    )
    try:
        await asyncio.wait_for(stepping.wait(), JOB_S)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        again = await past_the_lock(client, GENERATE, key, json=PROMPT)
        assert again.status_code == 202, again.text
        assert again.json()["id"] == stepped[0] and again.json()["status"] == "running"
        await one_job_one_hold(gw, before, stepped[0])
        assert stepped == [again.json()["id"]]
    finally:
        release.set()


async def test_a_key_whose_process_died_after_creating_its_job_stays_on_it(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request's process stops for good once the job exists (nothing of it runs again): the
    key's lock (shortened here) lapses, and the retry answers that job rather than making a
    second. The dead attempt cannot free the key the retry has completed."""
    gw, client = gateway
    monkeypatch.setattr(gw.idempotency, "lock_ms", 300)
    real_create = gw.jobs.store.create
    made: list[str] = []
    created = asyncio.Event()

    async def create(record: JobRecord, **kwargs: Any) -> object:
        answer = await real_create(record, **kwargs)
        if not made:
            made.append(record.job.id)
            created.set()
            await asyncio.Event().wait()  # the process is gone: this request never goes on
        return answer

    monkeypatch.setattr(gw.jobs.store, "create", create)
    before = await gw.accounting.ledger.account(TENANT)
    headers = {**AUTH, "Idempotency-Key": "order-53"}
    dead = asyncio.create_task(client.post(GENERATE, json=PROMPT, headers=headers))
    try:
        await asyncio.wait_for(created.wait(), JOB_S)
        again = await past_the_lock(client, GENERATE, headers, json=PROMPT)
        assert again.status_code == 202, again.text
        assert again.json()["id"] == made[0]
        await one_job_one_hold(gw, before, made[0])
    finally:
        dead.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dead
    replayed = await client.post(GENERATE, json=PROMPT, headers=headers)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == again.json()


async def test_a_job_made_for_one_tenant_is_never_answered_to_another(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    """A submission told its job may exist under an id that is another tenant's job (or whose
    creation finds that job) learns nothing of it and makes nothing."""
    gw, client = gateway
    first = await client.post(GENERATE, json=PROMPT, headers=AUTH)
    theirs = first.json()
    other = await gw.tenants.create("other")
    await gw.accounting.ledger.grant(other.id, 1000, "test")
    for may_exist in (True, False):
        with pytest.raises(NotFound) as refused:
            await gw.jobs.submit(
                other,
                Operation.image_generate,
                GenerateImage(prompt="a lighthouse at dusk"),
                Envelope(provider="imagepig"),
                options=JobOptions(job_id=theirs["id"], may_exist=may_exist),
            )
        assert refused.value.detail == NotFound("job", theirs["id"]).detail
    assert await gw.redis.zrange(keys.tenant_jobs(other.id), 0, -1) == []
    assert (await gw.accounting.ledger.account(other.id)).reserved == 0
    stored = await gw.jobs.store.get(theirs["id"])
    assert stored is not None and stored.record.tenant_id == TENANT and stored.version == 1


async def test_a_lost_batch_creation_reply_leaves_the_key_on_that_batch(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch is stored and the reply lost: the retry answers that batch, never a second (whose
    items would each become a second job)."""
    gw, client = gateway
    real_create = gw.batches.store.create
    made: list[str] = []

    async def create(batch_id: str, *args: Any, **kwargs: Any) -> bool:
        answer = await real_create(batch_id, *args, **kwargs)
        if not made:
            made.append(batch_id)
            raise RedisConnectionError("connection lost before the reply")
        return answer

    monkeypatch.setattr(gw.batches.store, "create", create)
    body = {"operation": "image.generate", "items": [PROMPT, PROMPT]}
    headers = {**AUTH, "Idempotency-Key": "batch-1"}
    first = await client.post("/v1/batches", json=body, headers=headers)
    assert first.status_code == 503 and len(made) == 1
    again = await client.post("/v1/batches", json=body, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == made[0] and again.json()["total"] == 2
    assert await gw.redis.zrange(keys.BATCHES_DUE, 0, -1) == made
    assert await gw.redis.llen(keys.batch_items(made[0])) == 2


async def test_a_lost_upload_reservation_reply_leaves_the_key_on_that_file(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload's bytes are counted against the quota and the reply lost: the retry stores the
    same file under the same id, counted once."""
    gw, client = gateway
    ledger = gw.storage.ledger
    real_reserve = ledger.reserve
    reserved: list[str] = []

    async def reserve(
        tenant_id: str, blobs: list[BlobEntry], records: list[BlobRecord] | None = None
    ) -> int:
        used = await real_reserve(tenant_id, blobs, records or ())
        if not reserved:
            reserved.append(blobs[0].blob_id)
            raise RedisConnectionError("connection lost before the reply")
        return used

    monkeypatch.setattr(ledger, "reserve", reserve)
    content = png_bytes(48, 40)
    before = await gw.storage.usage(TENANT)
    headers = {**AUTH, "Idempotency-Key": "upload-1"}
    files = {"file": ("picture.png", content, "image/png")}
    first = await client.post("/v1/files", files=files, headers=headers)
    assert first.status_code == 503 and len(reserved) == 1
    again = await client.post("/v1/files", files=files, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == reserved[0] and again.json()["bytes"] == len(content)
    after = await gw.storage.usage(TENANT)
    assert after.used_bytes - before.used_bytes == len(content)
    scheduled = [str(member) for member in await gw.redis.zrange(keys.BLOB_EXPIRIES, 0, -1)]
    files_scheduled = [member for member in scheduled if member.startswith("file_")]
    assert files_scheduled == [f"{reserved[0]}|{len(content)}|{TENANT}"]
    assert await gw.blobs.get(reserved[0]) == content


async def test_a_key_reused_or_in_flight_is_a_problem_pointing_at_the_header(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key sent again with another request (422), or while its first request still runs
    (409, with ``Retry-After``): each problem points at the header, as the key's other
    refusals do, and neither makes a job."""
    gw, client = gateway
    headers = {**AUTH, "Idempotency-Key": "once"}
    assert (await client.post(GENERATE, json=PROMPT, headers=headers)).status_code == 202
    other = {**PROMPT, "prompt": "a lighthouse at dawn"}
    reused = await client.post(GENERATE, json=other, headers=headers)

    running = {**AUTH, "Idempotency-Key": "running"}
    meanwhile: list[httpx.Response] = []
    jobs: list[int] = []

    async def step(stored: Stored) -> Stored:
        """The first request with the key waits on its job: the same request again."""
        jobs.append(len([key async for key in gw.redis.scan_iter(keys.job("*"))]))
        meanwhile.append(await client.post(GENERATE, json=PROMPT, headers=running))
        jobs.append(len([key async for key in gw.redis.scan_iter(keys.job("*"))]))
        return stored

    monkeypatch.setattr(gw.jobs.runner, "step", step)
    first = await client.post(GENERATE, json=PROMPT, headers={**running, "Prefer": "wait=1"})
    assert first.status_code in (200, 202), first.text
    (in_flight,) = meanwhile

    for answer, status, code in (
        (reused, 422, "idempotency_key_reused"),
        (in_flight, 409, "idempotency_key_in_flight"),
    ):
        assert answer.status_code == status, answer.text
        problem = answer.json()
        assert problem["code"] == code
        assert [(e["pointer"], e["code"]) for e in problem["errors"]] == [
            ("/headers/Idempotency-Key", code)
        ]
    assert in_flight.headers["retry-after"] == "1"
    assert jobs[0] == jobs[1] == 2  # the first two requests' jobs, none for the one refused
