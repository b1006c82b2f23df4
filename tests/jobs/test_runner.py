"""Every transition of the runner, with scripted upstreams on a real Redis: submitted,
progress, poll errors, upstream failures, retries, fallback; never a second submission for an
accepted task."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.domain.errors import ErrorCode, ProviderUnavailable, UpstreamTimeout
from app.domain.models import AttemptStatus, ChargeReason, JobStatus
from app.jobs.runner import POLL_BACKOFF_CAP_S, poll_backoff
from app.providers.base import Failed, PollTrouble, Progress, Submitted
from app.store import keys
from app.store.circuits import CircuitPolicy
from app.store.credits import LedgerKind
from tests.jobs.harness import ALPHA_PRICE, BETA_PRICE, TENANT, Core, job_core


@pytest.fixture
async def core(redis_client: Redis, tmp_path: Path) -> AsyncIterator[Core]:
    async with job_core(redis_client, tmp_path) as built:
        yield built


async def ledger_kinds(core: Core, job_id: str) -> list[tuple[LedgerKind, int]]:
    entries, _ = await core.ledger.entries(TENANT.id, cursor=None, limit=50, job_id=job_id)
    return [(e.kind, e.amount) for e in reversed(entries)]


async def test_a_submission_records_the_task_and_polls_it_until_done(core: Core) -> None:
    job_id = await core.submit()
    core.alpha.submits.append(Submitted("task_1", poll_after_s=0))
    record = await core.step(job_id)
    (attempt,) = record.job.attempts
    assert (attempt.status, attempt.provider_job_id) == (AttemptStatus.running, "task_1")
    assert record.job.status is JobStatus.running

    core.alpha.polls.extend([Progress(0.25, poll_after_s=0), Progress(None, poll_after_s=0)])
    record = await core.step(job_id)
    assert record.job.progress == 0.25
    record = await core.step(job_id)
    assert record.job.progress == 0.25  # no news keeps what was known

    record = await core.step(job_id)
    assert record.job.status is JobStatus.succeeded
    assert record.job.progress == 1.0
    assert record.job.output is not None and len(record.job.output.artifacts) == 1
    assert record.job.attempts[0].charge_reason is ChargeReason.delivered
    assert record.job.credits.charged == ALPHA_PRICE
    assert core.alpha.polled == ["task_1"] * 3
    assert len(core.alpha.submitted) == 1
    assert await ledger_kinds(core, job_id) == [
        (LedgerKind.reserve, ALPHA_PRICE),
        (LedgerKind.charge, ALPHA_PRICE),
    ]


@pytest.mark.parametrize(
    "trouble",
    [
        ProviderUnavailable("alpha answered HTTP 500"),
        ProviderUnavailable("alpha could not be reached (ConnectError)"),
        ProviderUnavailable("alpha answered with an unreadable body (not JSON)"),
        UpstreamTimeout("alpha did not answer in time"),
        PollTrouble("alpha HTTP 429: slow down", retry_after_s=0.01),
        PollTrouble("alpha HTTP 429: slow down"),
    ],
    ids=["5xx", "connection", "malformed", "timeout", "429 retry-after", "429"],
)
async def test_poll_errors_poll_the_same_task_again_and_never_resubmit(
    core: Core, trouble: Exception | PollTrouble
) -> None:
    job_id = await core.submit()
    await core.step(job_id)  # submitted
    core.alpha.polls.extend([trouble, trouble, trouble])
    for polls in (1, 2, 3):
        record = await core.step(job_id)
        attempt = record.job.attempts[-1]
        assert record.job.status is JobStatus.running
        assert (attempt.status, attempt.poll_errors) == (AttemptStatus.running, polls)
        assert record.poll_streak == polls
    record = await core.step(job_id)
    assert record.job.status is JobStatus.succeeded
    assert len(record.job.attempts) == 1
    assert record.job.attempts[0].poll_errors == 3
    assert len(core.alpha.submitted) == 1
    assert core.alpha.polled == ["alpha_task_1"] * 4
    assert await ledger_kinds(core, job_id) == [
        (LedgerKind.reserve, ALPHA_PRICE),
        (LedgerKind.charge, ALPHA_PRICE),
    ]


async def test_progress_ends_a_streak_of_poll_errors(core: Core) -> None:
    job_id = await core.submit()
    await core.step(job_id)
    core.alpha.polls.extend([ProviderUnavailable("500"), Progress(0.5, poll_after_s=0)])
    assert (await core.step(job_id)).poll_streak == 1
    record = await core.step(job_id)
    assert record.poll_streak == 0 and record.job.attempts[0].poll_errors == 1


def test_poll_backoff_doubles_with_the_streak_and_is_capped(core: Core) -> None:
    adapter = core.alpha
    waits = [poll_backoff(adapter, streak, None) for streak in range(1, 30)]
    assert all(0 < w <= POLL_BACKOFF_CAP_S for w in waits)
    assert waits[-1] > 0.75 * POLL_BACKOFF_CAP_S - 1e-9  # reached the cap
    assert poll_backoff(adapter, 1, 7.0) >= 7.0  # the upstream's Retry-After is honoured
    assert poll_backoff(adapter, 1, 3600.0) == POLL_BACKOFF_CAP_S


async def test_an_upstream_failure_is_retried_with_a_fresh_submission(core: Core) -> None:
    job_id = await core.submit(fallback=[])
    await core.step(job_id)
    core.alpha.polls.append(
        Failed(ErrorCode.upstream_failed, "task failed", retryable=True, retry_after_s=0.01)
    )
    record = await core.step(job_id)
    first = record.job.attempts[0]
    assert first.status is AttemptStatus.failed
    assert first.charge_reason is ChargeReason.upstream_failed
    assert record.job.status is JobStatus.running
    record = await core.step(job_id)  # the retry: a second task
    assert [a.provider_job_id for a in record.job.attempts] == ["alpha_task_1", "alpha_task_2"]
    record = await core.step(job_id)
    assert record.job.status is JobStatus.succeeded
    assert record.job.credits.charged == ALPHA_PRICE


async def test_retries_end_after_three_tries_failed_and_released(core: Core) -> None:
    before = await core.available()
    job_id = await core.submit(fallback=[])
    failure = Failed(ErrorCode.upstream_failed, "failed", retryable=True, retry_after_s=0.01)
    core.alpha.polls.extend([failure] * 3)
    record = await core.record(job_id)
    while not record.job.status.terminal:
        record = await core.step(job_id)
    assert record.job.status is JobStatus.failed
    assert record.job.error is not None and record.job.error.code is ErrorCode.upstream_failed
    assert len(record.job.attempts) == 3
    assert {a.charge_reason for a in record.job.attempts} == {ChargeReason.upstream_failed}
    assert record.job.credits.charged == 0
    assert await core.available() == before


async def test_a_failure_that_is_the_users_own_ends_the_job_at_once(core: Core) -> None:
    job_id = await core.submit()
    core.alpha.submits.append(Failed(ErrorCode.content_blocked, "blocked", retryable=False))
    record = await core.step(job_id)
    assert record.job.status is JobStatus.failed
    assert record.job.attempts[0].charge_reason is ChargeReason.not_accepted
    assert record.job.credits.charged == 0
    assert await ledger_kinds(core, job_id) == [
        (LedgerKind.reserve, ALPHA_PRICE),
        (LedgerKind.release, ALPHA_PRICE),
    ]


async def test_a_submission_that_did_not_get_through_is_submitted_again(core: Core) -> None:
    job_id = await core.submit(fallback=[])
    core.alpha.submits.append(ProviderUnavailable("alpha could not be reached"))
    record = await core.step(job_id)
    assert record.job.attempts[0].charge_reason is ChargeReason.not_accepted
    assert record.job.attempts[0].provider_job_id is None
    await core.step(job_id)
    record = await core.step(job_id)
    assert record.job.status is JobStatus.succeeded
    assert len(core.alpha.submitted) == 2


async def test_a_submission_that_went_out_unanswered_is_counted_as_maybe_billed(
    core: Core,
) -> None:
    """A read timeout after the whole request went out: the upstream may have the task. The
    job is submitted again (it must get done), and the first attempt says it may be billed:
    its document price counts in the provider's spend; a refused connection never does."""
    job_id = await core.submit(fallback=[])
    core.alpha.submits.append(UpstreamTimeout("alpha did not answer in time", unanswered=True))
    record = await core.step(job_id)
    first = record.job.attempts[0]
    assert (first.charge_reason, first.provider_job_id) == (ChargeReason.unanswered, None)
    await core.step(job_id)
    record = await core.step(job_id)
    assert record.job.status is JobStatus.succeeded
    assert len(core.alpha.submitted) == 2
    unanswered, delivered = record.job.attempts
    assert unanswered.upstream_cost is not None and unanswered.upstream_cost > 0
    assert unanswered.upstream_cost == delivered.upstream_cost
    assert record.job.credits.charged == ALPHA_PRICE  # the tenant pays once

    refused = await core.submit(fallback=[])
    core.alpha.submits.append(ProviderUnavailable("alpha could not be reached"))
    for _ in range(3):
        record = await core.step(refused)
    assert record.job.status is JobStatus.succeeded
    assert record.job.attempts[0].upstream_cost is None  # it never had the task


async def test_fallback_moves_the_hold_and_charges_the_next_provider(core: Core) -> None:
    job_id = await core.submit(fallback=["beta"], style_id="1:2")
    await core.step(job_id)
    core.alpha.polls.append(Failed(ErrorCode.upstream_failed, "task failed", retryable=True))
    record = await core.step(job_id)
    assert record.plan == ["beta"]
    assert record.job.credits.reserved == BETA_PRICE
    await core.step(job_id)  # submitted at beta
    record = await core.step(job_id)
    assert record.job.status is JobStatus.succeeded
    assert [a.provider for a in record.job.attempts] == ["alpha", "beta"]
    assert record.job.credits.charged == BETA_PRICE
    assert await ledger_kinds(core, job_id) == [
        (LedgerKind.reserve, ALPHA_PRICE),
        (LedgerKind.adjust, BETA_PRICE - ALPHA_PRICE),
        (LedgerKind.charge, BETA_PRICE),
    ]


async def test_a_fallback_the_tenant_cannot_afford_fails_the_job(
    redis_client: Redis, tmp_path: Path
) -> None:
    async with job_core(redis_client, tmp_path, credits=ALPHA_PRICE) as core:
        job_id = await core.submit(fallback=["beta"], style_id="1:2")
        await core.step(job_id)
        core.alpha.polls.append(Failed(ErrorCode.upstream_failed, "task failed", retryable=True))
        record = await core.step(job_id)
        assert record.job.status is JobStatus.failed
        assert record.job.error is not None
        assert record.job.error.code is ErrorCode.insufficient_credits
        assert record.job.credits.charged == 0
        assert await core.available() == ALPHA_PRICE
        assert core.beta.submitted == []


async def test_an_open_circuit_refuses_submissions_not_polls(
    redis_client: Redis, tmp_path: Path
) -> None:
    policy = CircuitPolicy(failure_ratio=0.5, min_requests=2, open_s=60)
    async with job_core(redis_client, tmp_path, circuit=policy) as core:
        polling = await core.submit()
        await core.step(polling)  # accepted before the circuit opens
        for _ in range(2):
            await core.gate_failure()
        refused = await core.submit(fallback=[])
        record = await core.step(refused)
        (attempt,) = record.job.attempts
        assert attempt.charge_reason is ChargeReason.not_accepted
        assert attempt.error is not None and "circuit" in attempt.error.message
        assert len(core.alpha.submitted) == 1
        record = await core.step(polling)  # the accepted task is still read
        assert record.job.status is JobStatus.succeeded


async def test_polls_running_late_hold_new_submissions_never_polls(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upstream that drops tasks not polled in time: while polls go out later than it
    allows, new tasks wait in the queue and the running ones are still read."""
    monkeypatch.setattr(type(core.alpha), "poll_lateness_s", 1.0)
    running = await core.submit()
    await core.step(running)  # accepted
    core.alpha.polls.append(Progress(0.5, poll_after_s=0))
    stored = await core.claim(running)
    assert stored.due_ms is not None
    stored.due_ms -= 3000  # this poll went out 3 s after it was due
    await core.runner.step(stored)

    waiting = await core.submit()
    record = await core.step(waiting)
    assert record.job.status is JobStatus.queued
    assert len(core.alpha.submitted) == 1  # held back: not sent
    due_in_s = (await core.redis.zscore(keys.DUE, waiting) or 0) / 1000 - time.time()
    assert due_in_s > 1.0  # back in the queue for a while, not spinning

    record = await core.step(running)  # the running task is still polled (on time now)
    assert record.job.status is JobStatus.succeeded
    record = await core.step(waiting)  # due again after the hold: submitted
    assert len(core.alpha.submitted) == 2
    assert record.job.attempts[-1].provider_job_id == "alpha_task_2"


async def test_a_queue_running_late_holds_submissions_to_an_upstream_that_drops_tasks(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs claimed later than an upstream's polls may be: a task submitted now would be
    polled as late, so submissions to that upstream wait; other upstreams are not held."""
    monkeypatch.setattr(type(core.alpha), "poll_lateness_s", 1.0)
    behind = await core.submit(provider="beta", style_id="1:2")
    stored = await core.claim(behind)
    assert stored.due_ms is not None
    stored.due_ms -= 3000  # the queue is 3 s behind
    record = (await core.runner.step(stored)).record
    assert len(core.beta.submitted) == 1  # beta drops nothing: not held

    waiting = await core.submit()
    record = await core.step(waiting)
    assert record.job.status is JobStatus.queued
    assert core.alpha.submitted == []
    record = await core.step(waiting)  # due again once the queue is on time: submitted
    assert len(core.alpha.submitted) == 1
