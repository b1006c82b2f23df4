"""An upstream that answers a submission with its result is paid for that result once: the
gateway never submits the attempt again, whatever the output store or Redis does between the
upstream's answer and the end of the step. On a real Redis and a real blob store (a local
disk).

- A write of the output that fails for a while is tried again: the job succeeds, charged once.
- One that keeps failing ends the job ``failed`` (``store_unavailable``), the tenant charged
  nothing and the upstream's cost on the spend record, listed by reconciliation.
- An error after the job's terminal save (giving its upstream slot back) is tried again or left
  to lapse: the step answers the finished job, never an error its worker would act on.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.blobs import BlobStoreError, LocalBlobStore
from app.domain.errors import ErrorCode
from app.domain.models import AttemptStatus, ChargeReason, Job, JobRecord, JobStatus
from app.domain.operations import GenerateImage, Operation
from app.jobs.accounting import SpendRecord
from app.jobs.envelope import Envelope
from app.jobs.reconcile import reconcile
from app.providers.base import UpstreamLimit
from app.store import keys
from app.store.spend import SpendLog
from app.store.storage import BlobEntry, BlobRecord
from app.store.upstream_budgets import Budget
from tests.jobs.harness import (
    ALPHA_PRICE,
    TENANT,
    WAIT_S,
    Core,
    job_core,
    picture,
    run_as_worker,
)

LEASE_S = 1.0
"""The runner's lease where a write keeps failing: what it is tried again within."""
SLOTS = keys.upstream_jobs("alpha", "default", 0)
"""Alpha's concurrent-job slots, where a test gives it some."""


@pytest.fixture
async def core(redis_client: Redis, tmp_path: Path) -> AsyncIterator[Core]:
    async with job_core(redis_client, tmp_path) as built:
        yield built


def blob_store(core: Core) -> LocalBlobStore:
    blobs = core.storage.blobs
    assert isinstance(blobs, LocalBlobStore)
    return blobs


def fail_puts_once(core: Core) -> list[str]:
    """The blob store's first write fails as an object store answering 500 does; the ids it
    failed."""
    blobs = blob_store(core)
    put = blobs.put
    failed: list[str] = []

    async def flaky(blob_id: str, data: bytes, content_type: str | None = None) -> None:
        if not failed:
            failed.append(blob_id)
            raise BlobStoreError("the object store answered 500")
        await put(blob_id, data, content_type)

    blobs.put = flaky  # type: ignore[method-assign,assignment]
    return failed


def fail_reservation_once(core: Core) -> list[str]:
    """The storage ledger's first reservation (counting outputs against the tenant's quota
    before they are written) meets a Redis error; the ids it failed."""
    ledger = core.storage.ledger
    reserve = ledger.reserve
    failed: list[str] = []

    async def flaky(
        tenant_id: str, blobs: Sequence[BlobEntry], records: Sequence[BlobRecord] = ()
    ) -> int:
        if not failed:
            failed.append(blobs[0].blob_id)
            raise RedisConnectionError("failover")
        return await reserve(tenant_id, blobs, records)

    ledger.reserve = flaky  # type: ignore[method-assign]
    return failed


def break_disk(core: Core) -> Path:
    """Every write to the blob store fails from now on, as on a disk that refuses them: the
    directory writes go through first is a file. The file, to tell it from the blobs."""
    partial = blob_store(core).partial
    shutil.rmtree(partial)
    partial.write_bytes(b"")
    core.runner.lease_s = LEASE_S
    return partial


def blobs_on_disk(root: Path, besides: Path | None = None) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and path != besides]


async def spend(core: Core) -> list[tuple[int, SpendRecord]]:
    """The upstream-spend stream: what each finished job was charged, and its record."""
    entries = await SpendLog(core.redis).read(0, None, limit=100)
    return [(e.charged, SpendRecord.model_validate_json(e.record)) for e in entries]


async def waited(core: Core) -> Job:
    """An ``image.generate`` job its client waits for (``Prefer: wait``), whose upstream
    answers the submission with its result."""
    core.alpha.submits.append(picture())
    params = GenerateImage.model_validate({"prompt": "a lighthouse"})
    return await core.service.submit(
        TENANT, Operation.image_generate, params, Envelope(provider="alpha"), wait_s=WAIT_S
    )


async def assert_delivered_once(core: Core, job: Job | JobRecord) -> None:
    """Submitted once, succeeded with its output on the disk, charged once."""
    found = job if isinstance(job, Job) else job.job
    assert len(core.alpha.submitted) == 1
    assert found.status is JobStatus.succeeded, found
    assert found.output is not None
    [artifact] = found.output.artifacts
    assert await core.storage.blobs.get(artifact.id) is not None
    [attempt] = found.attempts
    assert attempt.charge_reason is ChargeReason.delivered
    assert await core.available() == 1000 - ALPHA_PRICE
    [(charged, record)] = await spend(core)
    assert charged == ALPHA_PRICE
    assert [a.upstream_cost for a in record.attempts] == [ALPHA_PRICE]


async def assert_undelivered(core: Core, job: Job | JobRecord) -> None:
    """Submitted once, failed ``store_unavailable``, charged nothing, the upstream's cost of
    the result on the spend record, and listed by reconciliation with its reason."""
    found = job if isinstance(job, Job) else job.job
    assert len(core.alpha.submitted) == 1
    assert found.status is JobStatus.failed, found
    assert found.error is not None and found.error.code is ErrorCode.store_unavailable
    assert found.output is None
    [attempt] = found.attempts
    assert attempt.status is AttemptStatus.failed
    assert attempt.charge_reason is ChargeReason.undelivered
    assert attempt.upstream_cost == ALPHA_PRICE  # the upstream billed the result
    assert found.credits.charged == 0
    assert await core.available() == 1000
    [(charged, record)] = await spend(core)
    assert charged == 0
    assert [(a.charge_reason, a.upstream_cost) for a in record.attempts] == [
        (ChargeReason.undelivered, ALPHA_PRICE)
    ]
    since = datetime.now(UTC) - timedelta(minutes=5)
    report = await reconcile(SpendLog(core.redis), since, None, ["alpha"])
    [unpaid] = report.unpaid
    assert (unpaid.job_id, unpaid.reason, unpaid.upstream_cost) == (
        found.id,
        "undelivered",
        ALPHA_PRICE,
    )
    assert report.unexplained == 0


@pytest.mark.parametrize(
    "fail_once",
    [fail_puts_once, fail_reservation_once],
    ids=["object-store-500", "storage-ledger-redis-error"],
)
async def test_a_result_whose_write_fails_once_is_kept_and_submitted_once(
    core: Core, fail_once: Callable[[Core], list[str]]
) -> None:
    core.alpha.submits.append(picture())
    failed = fail_once(core)
    job_id = await core.submit()
    record, errors = await run_as_worker(core, job_id)
    assert len(failed) == 1
    assert errors == []
    await assert_delivered_once(core, record)


async def test_a_waited_result_whose_write_fails_once_is_answered_succeeded(core: Core) -> None:
    """The output written under the id its creation scheduled, on the second try."""
    failed = fail_puts_once(core)
    job = await waited(core)
    assert len(failed) == 1
    await assert_delivered_once(core, job)
    assert job.output is not None
    assert [a.id for a in job.output.artifacts] == failed


async def test_a_result_that_cannot_be_written_fails_the_job_uncharged_and_on_record(
    core: Core, tmp_path: Path
) -> None:
    partial = break_disk(core)
    core.alpha.submits.append(picture())
    job_id = await core.submit()
    record, errors = await run_as_worker(core, job_id)
    assert errors == []
    await assert_undelivered(core, record)
    assert blobs_on_disk(tmp_path / "blobs", partial) == []
    # written under one reservation, tried again; the disk refuses to delete too, so its bytes
    # stay counted and scheduled: the sweeper deletes them when it comes due
    size = len(picture().files[0].content)
    assert (await core.storage.usage(TENANT.id)).used_bytes == size
    [entry] = await core.redis.zrange(keys.BLOB_EXPIRIES, 0, -1)
    assert str(entry).endswith(f"|{size}|{TENANT.id}")


async def test_a_waited_result_that_cannot_be_written_is_answered_failed(
    core: Core, tmp_path: Path
) -> None:
    """The entry its creation scheduled stays: it deletes whatever a write cut short left
    under the output's id."""
    partial = break_disk(core)
    job = await waited(core)
    await assert_undelivered(core, job)
    assert blobs_on_disk(tmp_path / "blobs", partial) == []
    assert (await core.storage.usage(TENANT.id)).used_bytes == 0
    [entry] = await core.redis.zrange(keys.BLOB_EXPIRIES, 0, -1)
    assert str(entry).endswith(f"|0|{TENANT.id}")


def with_slots(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alpha runs at most two jobs at once per credential: each job holds a slot until it
    ends."""
    monkeypatch.setattr(core.alpha, "limits", {"default": UpstreamLimit(concurrent_jobs=2)})


def fail_slot_release(
    core: Core, monkeypatch: pytest.MonkeyPatch, error: Exception, times: int | None
) -> list[str]:
    """Giving a job's upstream slot back raises ``error``, the first ``times`` times (None:
    every time); the jobs it failed for."""
    budgets = core.runner.gate.budgets
    release = budgets.release
    failed: list[str] = []

    async def flaky(budget: Budget, job_id: str, credential: int) -> None:
        if times is None or len(failed) < times:
            failed.append(job_id)
            raise error
        await release(budget, job_id, credential)

    monkeypatch.setattr(budgets, "release", flaky)
    return failed


async def test_a_redis_error_after_the_terminal_save_is_tried_again_not_the_step(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_slots(core, monkeypatch)
    failed = fail_slot_release(core, monkeypatch, RedisConnectionError("failover"), 1)
    core.alpha.submits.append(picture())
    job_id = await core.submit()
    record, errors = await run_as_worker(core, job_id)
    assert failed == [job_id]
    assert errors == []
    await assert_delivered_once(core, record)
    assert await core.redis.zscore(SLOTS, job_id) is None  # given back when tried again


async def test_any_error_after_the_terminal_save_leaves_the_finished_job_as_the_answer(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a store error: not tried again; the slot lapses in its time."""
    with_slots(core, monkeypatch)
    failed = fail_slot_release(core, monkeypatch, RuntimeError("a bug"), None)
    core.alpha.submits.append(picture())
    job_id = await core.submit()
    record, errors = await run_as_worker(core, job_id)
    assert failed == [job_id]
    assert errors == []
    await assert_delivered_once(core, record)


async def test_a_waited_job_is_answered_finished_through_an_error_after_its_save(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_slots(core, monkeypatch)
    failed = fail_slot_release(core, monkeypatch, RedisConnectionError("failover"), 1)
    job = await waited(core)
    assert failed == [job.id]
    await assert_delivered_once(core, job)
    assert await core.redis.zscore(SLOTS, job.id) is None
