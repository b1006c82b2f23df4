"""The job store against a real Redis: create, claim, leases, versioned saves, recovery."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from redis.asyncio import Redis

from app.domain.models import Attempt, Job, JobLinks, JobRecord, JobStatus, new_job_id, utcnow
from app.domain.operations import Operation
from app.store import keys
from app.store.credits import CreditLedger, Shortfall
from app.store.jobs import JobSlotsFull, JobStore, SaveRefused, Schedule, Settle, Stored, now_ms
from app.store.rate_limits import RateCheck, RateRefused
from app.store.scripts import Scripts


def make_record(tenant: str = "t1") -> JobRecord:
    job_id = new_job_id()
    job = Job(
        id=job_id,
        operation=Operation.image_remove_background,
        status=JobStatus.queued,
        input={"image": {"file_id": "file_1"}},
        created_at=utcnow(),
        links=JobLinks(self=f"/v1/jobs/{job_id}", cancel="c", events="e"),
    )
    return JobRecord(job=job, tenant_id=tenant, params={}, plan=["imagepig"])


@pytest.fixture
def store(redis_client: Redis) -> JobStore:
    return JobStore(redis_client, Scripts.register(redis_client), retention_s=3600)


async def test_created_job_is_due_and_claimed_once(store: JobStore) -> None:
    record = make_record()
    await store.create(record, price=0, slot_limit=1000)
    first, second = await asyncio.gather(store.claim(10, 30), store.claim(10, 30))
    claimed = first + second
    assert [s.record.job.id for s in claimed] == [record.job.id]
    assert claimed[0].lease is not None
    assert await store.claim(10, 30) == []


async def test_the_next_due_job_is_known_to_the_idle_worker(store: JobStore) -> None:
    assert await store.next_due_in_s() is None  # an empty queue
    await store.create(make_record(), price=0, slot_limit=1000)
    due = await store.next_due_in_s()
    assert due is not None and due <= 0  # due at once
    (claimed,) = await store.claim(10, 30)
    assert claimed.lease is not None
    await store.save(claimed, schedule=Schedule.due, due_ms=now_ms() + 60_000, lease=claimed.lease)
    later = await store.next_due_in_s()
    assert later is not None and 0 < later <= 60


async def test_job_created_with_lease_is_not_claimable(store: JobStore) -> None:
    stored = cast(Stored, await store.create(make_record(), price=0, slot_limit=1000, lease_s=30))
    assert stored.lease is not None
    assert await store.claim(10, 30) == []


async def test_expired_lease_is_recovered_by_another_claim(store: JobStore) -> None:
    record = make_record()
    await store.create(record, price=0, slot_limit=1000, lease_s=0.05)
    await asyncio.sleep(0.1)
    claimed = await store.claim(10, 30)
    assert [s.record.job.id for s in claimed] == [record.job.id]


async def test_save_requires_current_version_and_lease(store: JobStore) -> None:
    await store.create(make_record(), price=0, slot_limit=1000)
    (claimed,) = await store.claim(1, 30)
    claimed.record.job.status = JobStatus.running
    saved = await store.save(claimed, schedule=Schedule.keep, lease=claimed.lease)
    assert saved.version == claimed.version + 1
    with pytest.raises(SaveRefused, match="stale"):
        await store.save(claimed, schedule=Schedule.keep, lease=claimed.lease)
    with pytest.raises(SaveRefused, match="lease_lost"):
        await store.save(saved, schedule=Schedule.keep, lease="someone-else")


async def test_worker_loses_job_to_cancel(store: JobStore) -> None:
    await store.create(make_record(), price=0, slot_limit=1000)
    (claimed,) = await store.claim(1, 30)
    fresh = await store.get(claimed.record.job.id)
    assert fresh is not None
    fresh.record.job.status = JobStatus.canceled
    await store.save(fresh, schedule=Schedule.release)
    claimed.record.job.status = JobStatus.succeeded
    with pytest.raises(SaveRefused):
        await store.save(claimed, schedule=Schedule.release, lease=claimed.lease)
    final = await store.get(claimed.record.job.id)
    assert final is not None and final.record.job.status == JobStatus.canceled


async def test_terminal_job_expires_and_leaves_queues(store: JobStore, redis_client: Redis) -> None:
    await store.create(make_record(), price=0, slot_limit=1000)
    (claimed,) = await store.claim(1, 30)
    claimed.record.job.status = JobStatus.succeeded
    await store.save(claimed, schedule=Schedule.release, lease=claimed.lease)
    job_key = keys.job(claimed.record.job.id)
    assert 0 < await redis_client.ttl(job_key) <= 3600
    assert await redis_client.zscore(keys.LEASES, claimed.record.job.id) is None
    assert await redis_client.zscore(keys.DUE, claimed.record.job.id) is None
    with pytest.raises(SaveRefused, match="terminal"):
        refreshed = await store.get(claimed.record.job.id)
        assert refreshed is not None
        await store.save(refreshed, schedule=Schedule.keep)


async def test_rescheduled_job_is_due_only_at_its_time(store: JobStore) -> None:
    await store.create(make_record(), price=0, slot_limit=1000)
    (claimed,) = await store.claim(1, 30)
    claimed.record.job.attempts.append(Attempt(provider="pixelapi", provider_job_id="g1"))
    await store.save(claimed, schedule=Schedule.due, due_ms=now_ms() + 200, lease=claimed.lease)
    assert await store.claim(1, 30) == []
    await asyncio.sleep(0.25)
    (again,) = await store.claim(1, 30)
    assert again.record.current_attempt is not None
    assert again.record.current_attempt.provider_job_id == "g1"


async def test_renew_only_by_lease_holder(store: JobStore, redis_client: Redis) -> None:
    await store.create(make_record(), price=0, slot_limit=1000)
    (claimed,) = await store.claim(1, 0.5)
    job_id = claimed.record.job.id
    assert claimed.lease is not None
    assert await store.renew(job_id, claimed.lease, 30)
    assert not await store.renew(job_id, "not-the-holder", 30)
    expiry = await redis_client.zscore(keys.LEASES, job_id)
    assert expiry is not None and expiry > now_ms() + 20_000


async def test_concurrent_claims_hand_each_job_to_one_worker(store: JobStore) -> None:
    ids = set()
    for _ in range(200):
        record = make_record()
        ids.add(record.job.id)
        await store.create(record, price=0, slot_limit=1000)
    batches = await asyncio.gather(*(store.claim(16, 30) for _ in range(40)))
    claimed = [s.record.job.id for batch in batches for s in batch]
    assert len(claimed) == len(set(claimed)) == 200
    assert set(claimed) == ids


async def test_listing_is_newest_first_with_cursor(store: JobStore) -> None:
    created = []
    for _ in range(7):
        record = make_record("tenant-a")
        created.append(record.job.id)
        await store.create(record, price=0, slot_limit=1000)
        await asyncio.sleep(0.002)
    await store.create(make_record("tenant-b"), price=0, slot_limit=1000)
    first = await store.list_ids("tenant-a", before=None, limit=4)
    rest = await store.list_ids("tenant-a", before=first[-1], limit=4)
    assert first + rest == list(reversed(created))


async def test_creation_holds_credits_or_writes_nothing(
    store: JobStore, redis_client: Redis
) -> None:
    ledger = CreditLedger(redis_client, store.scripts)
    await ledger.grant("t1", 5, "test")
    short = await store.create(make_record("t1"), price=6, slot_limit=1000)
    assert short == Shortfall(required=6, available=5)
    assert await redis_client.keys("mg:job:*") == []
    assert await store.claim(10, 30) == []
    created = await store.create(make_record("t1"), price=5, slot_limit=1000)
    assert not isinstance(created, Shortfall)
    assert (await ledger.account("t1")).available == 0


async def test_terminal_save_settles_the_hold_exactly_once(
    store: JobStore, redis_client: Redis
) -> None:
    ledger = CreditLedger(redis_client, store.scripts)
    await ledger.grant("t1", 10, "test")
    await store.create(make_record("t1"), price=3, slot_limit=1000)
    (claimed,) = await store.claim(1, 30)
    claimed.record.job.status = JobStatus.succeeded
    saved = await store.save(
        claimed, schedule=Schedule.release, lease=claimed.lease, settle=Settle.charge
    )
    assert saved.record.job.credits.charged == 3
    with pytest.raises(SaveRefused):  # a second, stale finish moves no credits
        await store.save(
            claimed, schedule=Schedule.release, lease=claimed.lease, settle=Settle.charge
        )
    balance = await ledger.account("t1")
    assert (balance.balance, balance.reserved) == (7, 0)


async def test_failed_job_releases_its_hold(store: JobStore, redis_client: Redis) -> None:
    ledger = CreditLedger(redis_client, store.scripts)
    await ledger.grant("t1", 10, "test")
    await store.create(make_record("t1"), price=4, slot_limit=1000)
    assert (await ledger.account("t1")).available == 6
    (claimed,) = await store.claim(1, 30)
    claimed.record.job.status = JobStatus.failed
    await store.save(claimed, schedule=Schedule.release, lease=claimed.lease, settle=Settle.release)
    balance = await ledger.account("t1")
    assert (balance.balance, balance.reserved) == (10, 0)


async def test_creation_takes_a_job_slot_and_finishing_frees_it(
    store: JobStore, redis_client: Redis
) -> None:
    ledger = CreditLedger(redis_client, store.scripts)
    await ledger.grant("t1", 10, "test")
    await store.create(make_record("t1"), price=1, slot_limit=2)
    await store.create(make_record("t1"), price=1, slot_limit=2)
    full = await store.create(make_record("t1"), price=1, slot_limit=2)
    assert full == JobSlotsFull(limit=2)
    assert len(await redis_client.keys("mg:job:*")) == 2
    assert (await ledger.account("t1")).reserved == 2  # the refused job held nothing
    (claimed, _) = await store.claim(2, 30)
    claimed.record.job.status = JobStatus.succeeded
    await store.save(claimed, schedule=Schedule.release, lease=claimed.lease, settle=Settle.charge)
    assert not isinstance(
        await store.create(make_record("t1"), price=1, slot_limit=2), JobSlotsFull
    )


async def test_a_counted_read_answers_the_record_until_the_rate_is_spent(
    store: JobStore, redis_client: Redis
) -> None:
    """``read_counted``: the rate check and the read in one script, each request counted once;
    over the rate, nothing is read and the refusal carries the decision."""
    record = make_record()
    await store.create(record, price=0, slot_limit=10)
    rate = RateCheck("tenant:{reader}", 60, 3)
    body = await store.read_counted(record.job.id, rate)
    assert rate.sent and body is not None
    assert JobRecord.model_validate_json(body) == record
    assert await store.read_counted("job_unknown", RateCheck("tenant:{reader}", 60, 3)) is None
    assert await store.read_counted(None, RateCheck("tenant:{reader}", 60, 3)) is None
    with pytest.raises(RateRefused) as refused:
        await store.read_counted(record.job.id, RateCheck("tenant:{reader}", 60, 3))
    assert not refused.value.decision.allowed and refused.value.decision.retry_after_s > 0


async def test_a_creation_over_the_rate_writes_nothing_and_one_within_counts(
    store: JobStore, redis_client: Redis
) -> None:
    """``create(rate=…)``: the request is counted first, in the creation's script; refused
    for credits it stays counted, and over the rate nothing is created or held."""
    ledger = CreditLedger(redis_client, store.scripts)
    short = await store.create(make_record("t9"), price=5, slot_limit=10, rate=_rate())
    assert isinstance(short, Shortfall)  # counted all the same
    await ledger.grant("t9", 100, "test")
    record = make_record("t9")
    with pytest.raises(RateRefused):
        await store.create(record, price=5, slot_limit=10, rate=_rate())
    assert await store.get(record.job.id) is None
    assert (await ledger.account("t9")).reserved == 0
    assert await redis_client.zcard(keys.tenant_jobs("t9")) == 0


def _rate() -> RateCheck:
    return RateCheck("tenant:{t9}", 60, 1)
