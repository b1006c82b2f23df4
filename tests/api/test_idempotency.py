"""``Idempotency-Key`` on job submissions, through the app over a real Redis: a key that has
created a job stays bound to it, whatever fails after the creation, and is held for longer
than the longest ``Prefer: wait`` — one key, one job, one credit hold."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.blobs.base import BlobStoreError
from app.config import SANDBOX_TENANT_KEY
from app.domain.models import JobStatus
from app.gateway import Gateway
from app.store import keys
from app.store.jobs import Stored
from tests.utils.in_process import in_process_gateway

AUTH = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
GENERATE = "/v1/images/generate"
PROMPT = {"prompt": "a lighthouse at dusk", "provider": "imagepig"}
TENANT = "sandbox"


@pytest.fixture
async def gateway(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    async with in_process_gateway(redis_url, tmp_path, sandbox=True) as built:
        yield built


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
