"""A cancel that outlasts a slow submission, on a real Redis with an upstream that answers the
submission only after the cancel went through: the job is canceled at once, its credits held,
and the upstream's answer is recorded on the canceled job when it comes, by the step that sent
the submission (or, if that worker died, settled by the one that claims the job), so that a
task the upstream accepted is on the job's record, in the upstream-spend stream and in the
reconciliation, charged exactly as the tenant's policy says, and the balance exact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.domain.errors import ErrorCode
from app.domain.models import Attempt, AttemptStatus, ChargeReason, JobRecord, JobStatus
from app.jobs import submissions
from app.jobs.accounting import SpendRecord
from app.jobs.reconcile import Reconciliation, reconcile
from app.providers.base import Call, Failed, SubmitResult, Submitted
from app.store import keys
from app.store.jobs import Charge, SaveRefused, Schedule, Settle, Stored
from app.store.spend import SpendEntry
from tests.jobs.harness import ALPHA_PRICE, TENANT, Core, job_core, picture
from tests.utils.deadlines import JOB_S

CREDITS = 1000
HOOK = "https://hooks.example.com/mediagate"


@pytest.fixture(autouse=True)
def cancel_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel does not wait for the submission under way: the upstream here answers only
    once the test says, after the cancel went through (as one slower than the wait does)."""
    monkeypatch.setattr(submissions, "SUBMISSION_WAIT_S", 0.0)


@asynccontextmanager
async def cancel_core(
    redis: Redis, tmp_path: Path, *, charge_accepted_work: bool = True
) -> AsyncIterator[Core]:
    """The job core, its event hub listening (a cancel follows the job's changes)."""
    async with job_core(
        redis, tmp_path, credits=CREDITS, charge_accepted_work=charge_accepted_work
    ) as built:
        events = built.service.events
        await events.start()
        try:
            yield built
        finally:
            await events.stop()


@pytest.fixture
async def core(redis_client: Redis, tmp_path: Path) -> AsyncIterator[Core]:
    async with cancel_core(redis_client, tmp_path) as built:
        yield built


class HeldSubmissions:
    """The upstream holds every submission until the test answers it (``answer``)."""

    def __init__(self, core: Core) -> None:
        self.calls: list[Call] = []
        self.sending = asyncio.Event()
        self.answer: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        core.alpha.submit = self.submit  # type: ignore[method-assign]

    async def submit(self, call: Call) -> SubmitResult:
        self.calls.append(call)
        self.sending.set()
        return await self.answer


async def sending(core: Core, claimed: Stored) -> tuple[HeldSubmissions, asyncio.Task[Stored]]:
    """``claimed`` stepped by a worker until its submission is under way upstream."""
    held = HeldSubmissions(core)
    step = asyncio.create_task(core.runner.step(claimed))
    await asyncio.wait_for(held.sending.wait(), JOB_S)
    return held, step


async def canceled_while_sending(core: Core) -> tuple[str, HeldSubmissions, asyncio.Task[Stored]]:
    """A job whose submission is under way, canceled by its client before the upstream
    answered: the cancel answers the job canceled at once, its attempt ``submitting`` and its
    credits still held."""
    job_id = await core.submit()
    claimed = await core.claim(job_id)
    claimed.record.callback_url = HOOK  # its client follows it by webhook
    claimed = await core.store.save(claimed, schedule=Schedule.keep, lease=claimed.lease)
    held, step = await sending(core, claimed)
    canceled = await core.service.cancel(TENANT, job_id)
    assert canceled.status is JobStatus.canceled
    (attempt,) = canceled.attempts
    assert (attempt.status, attempt.provider_job_id) == (AttemptStatus.submitting, None)
    assert canceled.credits.charged == 0
    assert await core.available() == CREDITS - ALPHA_PRICE  # held, not yet settled
    assert await core.redis.zscore(keys.tenant_job_slots(TENANT.id), job_id) is None
    assert await spent(core, job_id) == []  # settled with the answer, not before
    assert await core.redis.zscore(keys.WEBHOOKS_DUE, job_id) is None  # sent once settled
    assert not step.done()
    return job_id, held, step


async def spent(core: Core, job_id: str) -> list[SpendEntry]:
    entries = await core.lifecycle.accounting.spend_log.read(0, None, limit=1000)
    return [e for e in entries if e.job_id == job_id]


async def charges(core: Core, job_id: str) -> list[int]:
    entries, _ = await core.ledger.entries(
        TENANT.id, cursor=None, limit=50, kind="charge", job_id=job_id
    )
    return [e.amount for e in entries]


async def reconciled(core: Core) -> Reconciliation:
    since = datetime.now(UTC) - timedelta(hours=1)
    return await reconcile(core.lifecycle.accounting.spend_log, since, None, ["alpha", "beta"])


async def settled_once(core: Core, job_id: str, charged: int) -> JobRecord:
    """The job as settled: canceled, off every queue and lease, charged ``charged`` once
    (the rest of its hold released), in the upstream-spend stream once, its webhook queued."""
    record = await core.record(job_id)
    assert record.job.status is JobStatus.canceled
    assert record.job.credits.charged == charged
    assert await charges(core, job_id) == ([charged] if charged else [])
    account = await core.ledger.account(TENANT.id)
    assert (account.balance, account.reserved) == (CREDITS - charged, 0)
    (entry,) = await spent(core, job_id)
    assert entry.charged == charged
    assert SpendRecord.model_validate_json(entry.record).attempts[-1].charge_reason is (
        record.job.attempts[-1].charge_reason
    )
    assert await core.redis.hget(keys.job(job_id), "lease") is None
    assert await core.redis.zscore(keys.LEASES, job_id) is None
    assert await core.redis.zscore(keys.DUE, job_id) is None
    assert await core.store.claim(10, 30) == []
    webhook = await core.redis.zscore(keys.WEBHOOKS_DUE, job_id)
    assert (webhook is not None) == (record.callback_url is not None)
    return record


@pytest.mark.parametrize("charge_accepted_work", [True, False], ids=["charged", "waived"])
async def test_a_task_accepted_after_the_cancel_is_on_the_canceled_job_charged_per_policy(
    redis_client: Redis, tmp_path: Path, charge_accepted_work: bool
) -> None:
    async with cancel_core(
        redis_client, tmp_path, charge_accepted_work=charge_accepted_work
    ) as core:
        job_id, held, step = await canceled_while_sending(core)
        again = await core.service.cancel(TENANT, job_id)  # canceling twice moves nothing
        assert again.status is JobStatus.canceled and again.credits.charged == 0
        held.answer.set_result(Submitted("alpha_task_late", poll_after_s=0))
        stepped = await asyncio.wait_for(step, JOB_S)

        charged = ALPHA_PRICE if charge_accepted_work else 0
        record = await settled_once(core, job_id, charged)
        assert stepped.record == record
        (attempt,) = record.job.attempts
        assert attempt.provider_job_id == "alpha_task_late"
        assert attempt.status is AttemptStatus.failed
        assert attempt.error is not None and attempt.error.code is ErrorCode.job_canceled
        reason = (
            ChargeReason.canceled_after_accept
            if charge_accepted_work
            else ChargeReason.canceled_waived
        )
        assert attempt.charge_reason is reason
        assert core.alpha.canceled == ["alpha_task_late"]  # asked to stop upstream
        assert len(held.calls) == 1

        (entry,) = await spent(core, job_id)
        (spend,) = SpendRecord.model_validate_json(entry.record).attempts
        assert spend.provider_job_id == "alpha_task_late"
        assert spend.upstream_cost == ALPHA_PRICE  # the accepted task, at its document price
        report = await reconciled(core)
        (alpha,) = [p for p in report.providers if p.provider == "alpha"]
        assert (alpha.tasks_submitted, alpha.tenant_charges) == (1, charged)
        assert [(u.job_id, u.reason) for u in report.unpaid] == (
            [] if charge_accepted_work else [(job_id, "canceled_waived")]
        )
        assert report.unexplained == 0


@pytest.mark.parametrize(
    ("answer", "reason", "status", "charged", "upstream_cost"),
    [
        (
            picture(),
            ChargeReason.canceled_after_accept,
            AttemptStatus.succeeded,
            ALPHA_PRICE,
            ALPHA_PRICE,
        ),
        (
            Failed(ErrorCode.upstream_timeout, "no answer", retryable=True, unanswered=True),
            ChargeReason.unanswered,
            AttemptStatus.failed,
            0,
            ALPHA_PRICE,
        ),
        (
            Failed(ErrorCode.provider_rate_limited, "busy", retryable=True),
            ChargeReason.not_accepted,
            AttemptStatus.failed,
            0,
            None,
        ),
    ],
    ids=["synchronous-result", "unanswered", "refused"],
)
async def test_any_answer_after_the_cancel_settles_the_canceled_job_once(
    core: Core,
    answer: SubmitResult,
    reason: ChargeReason,
    status: AttemptStatus,
    charged: int,
    upstream_cost: int | None,
) -> None:
    job_id, held, step = await canceled_while_sending(core)
    held.answer.set_result(answer)
    await asyncio.wait_for(step, JOB_S)

    record = await settled_once(core, job_id, charged)
    (attempt,) = record.job.attempts
    assert (attempt.status, attempt.charge_reason) == (status, reason)
    assert attempt.upstream_cost == upstream_cost
    assert record.job.output is None  # a canceled job keeps no result
    assert core.alpha.canceled == []  # no task to stop
    assert len(held.calls) == 1  # not submitted again
    if upstream_cost and not charged:
        assert [(u.job_id, u.reason) for u in (await reconciled(core)).unpaid] == [
            (job_id, reason.value)
        ]


async def test_a_job_whose_sender_died_is_settled_by_the_worker_that_claims_it(
    core: Core,
) -> None:
    """The worker dies before the upstream answers: its lease lapses, the next claim hands the
    canceled job out, and that worker settles it without an answer, submitting nothing. The
    submission went out: the upstream may have the task, and may bill it (``unanswered``)."""
    job_id, held, step = await canceled_while_sending(core)
    step.cancel()  # the worker dies (no write of its own after the cancel)
    with pytest.raises(asyncio.CancelledError):
        await step
    lease = await core.redis.hget(keys.job(job_id), "lease")
    assert lease is not None
    await core.store.renew(job_id, str(lease), 0)  # its lease lapses

    stepped = await core.runner.step(await core.claim(job_id))
    record = await settled_once(core, job_id, 0)
    assert stepped.record == record
    (attempt,) = record.job.attempts
    assert (attempt.status, attempt.charge_reason) == (
        AttemptStatus.failed,
        ChargeReason.unanswered,
    )
    assert attempt.upstream_cost == ALPHA_PRICE  # in the provider's spend at its price
    assert [(u.job_id, u.reason) for u in (await reconciled(core)).unpaid] == [
        (job_id, ChargeReason.unanswered.value)
    ]
    assert len(held.calls) == 1  # the claim did not submit it again


async def test_a_cancel_read_before_a_worker_claimed_the_job_leaves_the_answer_to_it(
    core: Core,
) -> None:
    """A job whose attempt is ``submitting`` with no worker holding it (requeued, or its
    worker died): a cancel reads it; a worker claims it and sends the submission without a
    save first (a claim does not move the version). The cancel's save is refused, and the
    cancel decided again leaves the answer to that worker."""
    job_id = await core.submit()
    first = await core.claim(job_id)
    first.record.job.attempts.append(Attempt(provider="alpha"))
    await core.store.save(first, schedule=Schedule.due, due_ms=0, lease=first.lease)
    seen = await core.store.get(job_id)  # the cancel's read
    assert seen is not None and seen.lease is None

    held, step = await sending(core, await core.claim(job_id))
    now = await core.store.get(job_id)
    assert now is not None and now.version == seen.version  # sent with no save before it
    with pytest.raises(SaveRefused, match="leased"):
        await core.lifecycle.cancel(seen)
    canceled = await core.service.cancel(TENANT, job_id)
    assert canceled.status is JobStatus.canceled
    assert canceled.attempts[-1].status is AttemptStatus.submitting

    held.answer.set_result(Submitted("alpha_task_late", poll_after_s=0))
    await asyncio.wait_for(step, JOB_S)
    record = await settled_once(core, job_id, ALPHA_PRICE)
    assert [a.provider_job_id for a in record.job.attempts] == ["alpha_task_late"]
    assert record.job.attempts[-1].charge_reason is ChargeReason.canceled_after_accept


@pytest.mark.parametrize("applied", [False, True], ids=["not-applied", "answer-lost"])
async def test_a_late_answer_whose_save_meets_a_redis_error_is_recorded_once(
    core: Core, applied: bool
) -> None:
    job_id, held, step = await canceled_while_sending(core)
    awaiting = core.lifecycle.awaiting
    settle_once = awaiting.settle
    failed: list[str] = []

    async def flaky(
        stored: Stored, lease: str, settle: Settle, charge: Charge | None, spend: str
    ) -> Stored:
        if not failed:
            failed.append(stored.record.job.id)
            if applied:  # written, its answer lost
                await settle_once(stored, lease, settle, charge, spend)
            raise RedisConnectionError("failover")
        return await settle_once(stored, lease, settle, charge, spend)

    awaiting.settle = flaky  # type: ignore[method-assign]
    held.answer.set_result(Submitted("alpha_task_late", poll_after_s=0))
    await asyncio.wait_for(step, JOB_S)
    assert failed == [job_id]
    record = await settled_once(core, job_id, ALPHA_PRICE)
    assert [a.provider_job_id for a in record.job.attempts] == ["alpha_task_late"]
    assert core.alpha.canceled == ["alpha_task_late"]
