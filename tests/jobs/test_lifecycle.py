"""The lifecycle's terminal transitions and the credits that go with each, on a real Redis:
cancel and deadline before and after the upstream accepted the task, under either policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.domain.errors import ErrorCode
from app.domain.models import AttemptStatus, ChargeReason, JobStatus, Measure
from app.jobs.prices.rules import render
from app.jobs.runner import Deadlines
from app.providers.base import Failed
from app.store.credits import LedgerKind, Pricing
from app.store.jobs import SaveRefused
from tests.jobs.harness import ALPHA_PRICE, TENANT, Core, job_core


@pytest.fixture
async def core(redis_client: Redis, tmp_path: Path) -> AsyncIterator[Core]:
    async with job_core(redis_client, tmp_path) as built:
        yield built


async def charges(core: Core, job_id: str) -> list[int]:
    entries, _ = await core.ledger.entries(
        TENANT.id, cursor=None, limit=50, kind="charge", job_id=job_id
    )
    return [e.amount for e in entries]


async def cancel(core: Core, job_id: str) -> None:
    stored = await core.store.get(job_id)
    assert stored is not None
    await core.lifecycle.cancel(stored)


async def test_canceled_before_the_upstream_accepted_it_costs_nothing(core: Core) -> None:
    before = await core.available()
    job_id = await core.submit()
    await cancel(core, job_id)
    record = await core.record(job_id)
    assert record.job.status is JobStatus.canceled
    assert record.job.credits.charged == 0
    assert record.job.attempts == []  # queued: no attempt was made
    assert await core.available() == before
    assert core.alpha.canceled == []


async def test_canceled_while_submitting_is_not_charged(core: Core) -> None:
    """An attempt recorded but without a task id (a submission under way or cut short)."""
    before = await core.available()
    job_id = await core.submit()
    core.alpha.submits.append(Failed(ErrorCode.provider_rate_limited, "busy", retryable=True))
    await core.step(job_id)
    stored = await core.store.get(job_id)
    assert stored is not None
    # as a worker that died during the submission leaves it: no task id known
    stored.record.job.attempts[-1].status = AttemptStatus.submitting
    stored.record.job.attempts[-1].charge_reason = None
    await core.lifecycle.cancel(stored)
    record = await core.record(job_id)
    attempt = record.job.attempts[-1]
    assert attempt.charge_reason is ChargeReason.not_accepted
    assert attempt.status is AttemptStatus.failed
    assert attempt.error is not None and attempt.error.code is ErrorCode.job_canceled
    assert record.job.credits.charged == 0
    assert await core.available() == before
    assert core.alpha.canceled == []


async def test_canceled_after_the_upstream_accepted_it_is_charged_and_asked_to_stop(
    core: Core,
) -> None:
    before = await core.available()
    job_id = await core.submit()
    await core.step(job_id)  # the upstream accepted the task
    await cancel(core, job_id)
    record = await core.record(job_id)
    assert record.job.status is JobStatus.canceled
    assert record.job.credits.charged == ALPHA_PRICE
    assert record.job.attempts[0].charge_reason is ChargeReason.canceled_after_accept
    assert record.job.attempts[0].provider_job_id == "alpha_task_1"
    assert await charges(core, job_id) == [ALPHA_PRICE]
    assert await core.available() == before - ALPHA_PRICE
    assert core.alpha.canceled == ["alpha_task_1"]


async def test_a_tenant_whose_policy_waives_accepted_work_is_not_charged(
    redis_client: Redis, tmp_path: Path
) -> None:
    async with job_core(redis_client, tmp_path, charge_accepted_work=False) as core:
        before = await core.available()
        job_id = await core.submit()
        await core.step(job_id)
        await cancel(core, job_id)
        record = await core.record(job_id)
        assert record.charge_accepted_work is False
        assert record.job.credits.charged == 0
        assert record.job.attempts[0].charge_reason is ChargeReason.canceled_waived
        assert await core.available() == before


async def test_a_tenant_setting_wins_over_the_default(core: Core) -> None:
    waiving = TENANT.model_copy(update={"charge_accepted_work": False})
    job_id = await core.submit(tenant=waiving)
    assert (await core.record(job_id)).charge_accepted_work is False
    job_id = await core.submit()
    assert (await core.record(job_id)).charge_accepted_work is True


async def test_a_worker_step_after_a_cancel_is_refused(core: Core) -> None:
    job_id = await core.submit()
    claimed = await core.claim(job_id)
    await cancel(core, job_id)
    with pytest.raises(SaveRefused):
        await core.runner.step(claimed)
    record = await core.record(job_id)
    assert record.job.status is JobStatus.canceled
    assert await charges(core, job_id) == []


async def test_a_second_cancel_is_refused_and_moves_no_credits(core: Core) -> None:
    job_id = await core.submit()
    await core.step(job_id)
    stored = await core.store.get(job_id)
    assert stored is not None
    await core.lifecycle.cancel(stored)
    with pytest.raises(SaveRefused):
        await core.lifecycle.cancel(stored)
    assert await charges(core, job_id) == [ALPHA_PRICE]


@pytest.mark.parametrize(
    ("policy", "reason", "charged"),
    [
        (True, ChargeReason.deadline_after_accept, ALPHA_PRICE),
        (False, ChargeReason.deadline_waived, 0),
    ],
)
async def test_past_its_deadline_after_the_upstream_accepted_it(
    redis_client: Redis, tmp_path: Path, policy: bool, reason: ChargeReason, charged: int
) -> None:
    deadlines = Deadlines(default_s=0.3)
    async with job_core(
        redis_client, tmp_path, deadlines=deadlines, charge_accepted_work=policy
    ) as core:
        before = await core.available()
        job_id = await core.submit()
        await core.step(job_id)
        record = await core.record(job_id)
        while not core.runner.deadlines.passed(record.job):
            await asyncio.sleep(0.05)
        record = await core.step(job_id)
        assert record.job.status is JobStatus.failed
        assert record.job.error is not None
        assert record.job.error.code is ErrorCode.upstream_timeout
        assert record.job.attempts[0].charge_reason is reason
        assert record.job.credits.charged == charged
        assert await core.available() == before - charged
        assert core.alpha.polled == []  # past the deadline: not polled again
        assert core.alpha.canceled == ["alpha_task_1"]


async def test_past_its_deadline_before_any_submission_costs_nothing(
    redis_client: Redis, tmp_path: Path
) -> None:
    async with job_core(redis_client, tmp_path, deadlines=Deadlines(default_s=0)) as core:
        before = await core.available()
        job_id = await core.submit()
        record = await core.step(job_id)
        assert record.job.status is JobStatus.failed
        assert record.job.attempts == [] or (
            record.job.attempts[0].charge_reason is ChargeReason.not_accepted
        )
        assert record.job.credits.charged == 0
        assert core.alpha.submitted == []
        assert await core.available() == before


async def test_charge_for_charges_only_for_charged_reasons(core: Core) -> None:
    job_id = await core.submit()
    record = await core.record(job_id)
    accounting = core.lifecycle.accounting
    for reason in ChargeReason:
        charge = accounting.charge_for(record.model_copy(deep=True), reason)
        if reason.charged:
            assert charge is not None and charge.amount == ALPHA_PRICE, reason
            assert charge.pricing is not None and charge.pricing.unit == "job", reason
        else:
            assert charge is None, reason
    assert {r for r in ChargeReason if r.charged} == {
        ChargeReason.delivered,
        ChargeReason.canceled_after_accept,
        ChargeReason.deadline_after_accept,
        ChargeReason.cache_hit,  # the share of the price a result from the cache costs
    }


async def test_charge_for_bills_the_work_measured_within_the_reservation(core: Core) -> None:
    """A job priced by the second, reserved for 30 s at 1/3 credit each (10 credits), is
    charged what it did: nothing for 0 s, 4 for 12 s, and no more than reserved for 40 s;
    the same answers when asked again."""
    job_id = await core.submit()
    record = await core.record(job_id)
    record.job.credits.unit, record.job.credits.rate = "second", "1/3"
    record.job.credits.quantity, record.job.credits.reserved = 30.0, 10
    accounting = core.lifecycle.accounting
    for _ in range(2):
        for seconds, amount, quantity in ((0.0, 0, 0.0), (12.0, 4, 12.0), (40.0, 10, 30.0)):
            ended = record.model_copy(deep=True)
            ended.measure = Measure(seconds=seconds)
            charge = accounting.charge_for(ended, ChargeReason.delivered)
            assert charge is not None and charge.amount == amount, seconds
            assert charge.pricing == Pricing("second", render(Fraction(quantity)), "1/3")
            assert ended.job.credits.quantity == quantity
        abandoned = accounting.charge_for(
            record.model_copy(deep=True), ChargeReason.canceled_after_accept
        )
        assert abandoned is not None and abandoned.amount == 10  # the reservation stands


async def test_every_terminal_save_settles_the_hold_once(core: Core) -> None:
    ids = [await core.submit() for _ in range(3)]
    await core.step(ids[0])
    await core.step(ids[0])  # succeeded
    await core.step(ids[1])
    await cancel(core, ids[1])  # canceled after accept
    await cancel(core, ids[2])  # canceled before
    holds = await core.ledger.open_holds(TENANT.id)
    assert holds == {}
    for job_id, expected in zip(ids, [[ALPHA_PRICE], [ALPHA_PRICE], []], strict=True):
        assert await charges(core, job_id) == expected
    kinds = [
        e.kind
        for e in (await core.ledger.entries(TENANT.id, cursor=None, limit=50, job_id=ids[2]))[0]
    ]
    assert kinds == [LedgerKind.release, LedgerKind.reserve]
