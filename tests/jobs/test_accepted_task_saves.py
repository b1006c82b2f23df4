"""A task the upstream accepted is on record once the step ends, whatever Redis does between
the upstream's answer and the save that records it: a job whose attempt were left
``submitting`` would be submitted, and paid, again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.domain.models import AttemptStatus, ChargeReason, JobStatus
from app.store.circuits import CircuitState
from app.store.jobs import Stored
from tests.jobs.harness import ALPHA_PRICE, Core, job_core, picture, run_as_worker

T = TypeVar("T")


@pytest.fixture
async def core(redis_client: Redis, tmp_path: Path) -> AsyncIterator[Core]:
    async with job_core(redis_client, tmp_path) as built:
        yield built


def fail_save_once(core: Core, marked: Callable[[Stored], T | None], *, applied: bool) -> list[T]:
    """The first save that ``marked`` names (by what it returns for it, ``None`` for the
    others) raises a connection error, after writing it (``applied``: its answer was lost)
    or without; what ``marked`` returned for the save it failed."""
    save = core.store.save
    failed: list[T] = []

    async def flaky(stored: Stored, **options: object) -> Stored:
        mark = marked(stored)
        if failed or mark is None:
            return await save(stored, **options)  # type: ignore[arg-type]
        failed.append(mark)
        if applied:
            await save(stored, **options)  # type: ignore[arg-type]
        raise RedisConnectionError("failover")

    core.store.save = flaky  # type: ignore[method-assign]
    return failed


def fail_task_id_save(core: Core, *, applied: bool) -> list[str]:
    """The first save that records an upstream task id fails (:func:`fail_save_once`); the
    task ids it failed."""

    def task_id(stored: Stored) -> str | None:
        attempt = stored.record.current_attempt
        return attempt.provider_job_id if attempt is not None else None

    return fail_save_once(core, task_id, applied=applied)


async def test_a_task_id_save_that_meets_a_redis_error_is_tried_again(core: Core) -> None:
    failed = fail_task_id_save(core, applied=False)
    job_id = await core.submit()
    record, errors = await run_as_worker(core, job_id)
    assert failed == ["alpha_task_1"]
    assert len(core.alpha.submitted) == 1
    assert errors == []
    assert [a.provider_job_id for a in record.job.attempts] == ["alpha_task_1"]
    assert record.job.status is JobStatus.succeeded


async def test_a_task_id_save_applied_whose_answer_was_lost_is_not_refused(core: Core) -> None:
    failed = fail_task_id_save(core, applied=True)
    job_id = await core.submit()
    record, errors = await run_as_worker(core, job_id)
    assert failed == ["alpha_task_1"]
    assert errors == []  # neither the lost answer nor the refused save again
    assert len(core.alpha.submitted) == 1
    assert [a.provider_job_id for a in record.job.attempts] == ["alpha_task_1"]
    assert record.job.status is JobStatus.succeeded


async def test_a_circuit_that_does_not_count_an_outcome_does_not_end_the_step(
    core: Core,
) -> None:
    circuits = core.runner.gate.circuits
    record_outcome = circuits.record
    failed: list[str] = []

    async def flaky(provider: str, job_id: str, ok: bool) -> CircuitState:
        if not failed:
            failed.append(job_id)
            raise RedisConnectionError("failover")
        return await record_outcome(provider, job_id, ok)

    circuits.record = flaky  # type: ignore[method-assign]
    job_id = await core.submit()
    record, errors = await run_as_worker(core, job_id)
    assert failed == [job_id]  # the submission's outcome
    assert len(core.alpha.submitted) == 1
    assert errors == []
    assert [a.provider_job_id for a in record.job.attempts] == ["alpha_task_1"]
    assert record.job.status is JobStatus.succeeded


async def test_a_save_tried_again_on_a_job_canceled_meanwhile_records_the_task_on_it(
    core: Core,
) -> None:
    """The read-back takes only a record holding the task as saved: a job canceled between
    the lost save and the one tried again keeps its refusal. The cancel came while the
    submission was under way, so the job awaits the upstream's answer: the step records the
    task on the canceled job, charged as accepted work, and asks the upstream to stop it."""
    job_id = await core.submit()
    save = core.store.save
    failed: list[str] = []

    async def canceled_meanwhile(stored: Stored, **options: object) -> Stored:
        attempt = stored.record.current_attempt
        if failed or attempt is None or attempt.provider_job_id is None:
            return await save(stored, **options)  # type: ignore[arg-type]
        failed.append(attempt.provider_job_id)
        current = await core.store.get(job_id)
        assert current is not None
        await core.lifecycle.cancel(current)  # a client's cancel, while the save was away
        raise RedisConnectionError("failover")

    core.store.save = canceled_meanwhile  # type: ignore[method-assign]
    saved = await core.runner.step(await core.claim(job_id))
    assert failed == ["alpha_task_1"]
    record = await core.record(job_id)
    assert saved.record == record
    assert record.job.status is JobStatus.canceled
    (attempt,) = record.job.attempts
    assert attempt.provider_job_id == "alpha_task_1"
    assert attempt.status is AttemptStatus.failed
    assert attempt.charge_reason is ChargeReason.canceled_after_accept
    assert record.job.credits.charged == ALPHA_PRICE
    assert await core.available() == 1000 - ALPHA_PRICE
    assert core.alpha.canceled == ["alpha_task_1"]


@pytest.mark.parametrize("applied", [False, True], ids=["not-applied", "answer-lost"])
async def test_a_synchronous_result_whose_save_meets_a_redis_error_is_kept(
    core: Core, applied: bool
) -> None:
    """An upstream that answers the submission with its result gives no task to poll: the
    terminal save that keeps the result is tried again, not left to a submission again."""
    core.alpha.submits.append(picture())
    failed = fail_save_once(
        core,
        lambda stored: (
            stored.record.job.status if stored.record.job.status is JobStatus.succeeded else None
        ),
        applied=applied,
    )
    job_id = await core.submit()
    record, errors = await run_as_worker(core, job_id)
    assert failed == [JobStatus.succeeded]
    assert len(core.alpha.submitted) == 1
    assert errors == []
    assert record.job.status is JobStatus.succeeded
    assert record.job.output is not None and len(record.job.output.artifacts) == 1
    assert await core.available() == 1000 - ALPHA_PRICE  # charged once
