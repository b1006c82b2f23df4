"""``JobStore.expedite`` against a real Redis: only a job waiting in the due-queue, only earlier."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from app.domain.models import JobStatus
from app.store import keys
from app.store.jobs import JobStore, Schedule, now_ms
from app.store.scripts import Scripts
from tests.store.test_jobs import make_record

LATER_MS = 60_000


@pytest.fixture
def store(redis_client: Redis) -> JobStore:
    return JobStore(redis_client, Scripts.register(redis_client), retention_s=3600)


async def _waiting(store: JobStore, after_ms: int) -> str:
    """A job saved back into the due-queue, due ``after_ms`` from now (as after a submit)."""
    record = make_record()
    await store.create(record, price=0, slot_limit=1000)
    (claimed,) = await store.claim(1, 30)
    claimed.record.job.status = JobStatus.running
    await store.save(
        claimed, schedule=Schedule.due, due_ms=now_ms() + after_ms, lease=claimed.lease
    )
    return record.job.id


async def test_a_job_due_later_is_made_due_now(store: JobStore, redis_client: Redis) -> None:
    job_id = await _waiting(store, LATER_MS)
    assert await store.claim(1, 30) == []
    before = now_ms()
    assert await store.expedite(job_id) is True
    score = await redis_client.zscore(keys.DUE, job_id)
    assert score is not None and before <= score <= now_ms()
    (claimed,) = await store.claim(1, 30)
    assert claimed.record.job.id == job_id


async def test_a_due_time_is_never_pushed_later(store: JobStore, redis_client: Redis) -> None:
    job_id = await _waiting(store, -5_000)  # overdue already
    score = await redis_client.zscore(keys.DUE, job_id)
    assert await store.expedite(job_id) is False
    assert await redis_client.zscore(keys.DUE, job_id) == score


async def test_a_leased_job_is_left_alone(store: JobStore, redis_client: Redis) -> None:
    record = make_record()
    await store.create(record, price=0, slot_limit=1000)
    (claimed,) = await store.claim(1, 30)
    lease_expiry = await redis_client.zscore(keys.LEASES, record.job.id)
    assert await store.expedite(record.job.id) is False
    assert await redis_client.zscore(keys.DUE, record.job.id) is None
    assert await redis_client.zscore(keys.LEASES, record.job.id) == lease_expiry
    assert await store.claim(1, 30) == []
    # the worker that holds it goes on undisturbed
    saved = await store.save(claimed, schedule=Schedule.keep, lease=claimed.lease)
    assert saved.version == claimed.version + 1


async def test_a_finished_or_unknown_job_is_not_queued(
    store: JobStore, redis_client: Redis
) -> None:
    record = make_record()
    await store.create(record, price=0, slot_limit=1000)
    (claimed,) = await store.claim(1, 30)
    claimed.record.job.status = JobStatus.failed
    await store.save(claimed, schedule=Schedule.release, lease=claimed.lease)
    assert await store.expedite(record.job.id) is False
    assert await store.expedite("job_000000000000ffffffffffffffff") is False
    assert await redis_client.zcard(keys.DUE) == 0
