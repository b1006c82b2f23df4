"""An upstream's answer to a submission whose job was canceled while it was under way.

**A cancel that lands while a submission is under way** (a worker holds the job and its
attempt is ``submitting``: the upstream has not answered) cannot know whether the upstream
accepts the task. It ends the job ``canceled`` and leaves the rest to the upstream's answer
(:meth:`~app.jobs.lifecycle.Lifecycle.cancel`, ``app/store/awaiting.py``): the credit hold
stays open, and the worker that holds the job records the answer and settles the job in one
save (:func:`answer_after_cancel`, with the lifecycle's settlement): an accepted task goes on
the attempt, charged or waived by the policy as any task accepted before a cancel, and is
asked to stop upstream; a synchronous result counts the same (not kept); a refusal, or no
answer, releases the hold. Whichever way the cancel and the acceptance land, the task is on
the record.
"""

from __future__ import annotations

from datetime import datetime

from app.domain.models import AttemptStatus, ChargeReason, JobError, JobRecord, JobStatus
from app.jobs.accounting import note_reported_cost
from app.jobs.lifecycle import Lifecycle, end_attempt
from app.providers.base import Failed, SubmitResult, Submitted, Succeeded
from app.store.jobs import SaveRefused, Settle, Stored


def awaits_answer(stored: Stored, lease: str) -> bool:
    """The job was canceled while its submission was under way, and awaits the upstream's
    answer from the worker that holds it under ``lease``."""
    attempt = stored.record.current_attempt
    return (
        stored.record.job.status is JobStatus.canceled
        and stored.lease == lease
        and attempt is not None
        and attempt.status is AttemptStatus.submitting
    )


async def answer_after_cancel(
    lifecycle: Lifecycle,
    job_id: str,
    lease: str,
    answer: SubmitResult | None,
    *,
    within_s: float,
    sender_died: bool = False,
) -> Stored | None:
    """Record the upstream's ``answer`` to the submission sent under ``lease`` on its job,
    canceled meanwhile (:meth:`~app.jobs.lifecycle.Lifecycle.cancel`), and settle the job:
    ``None`` when the job awaits no answer from this lease (it was not canceled so, or
    another worker holds it now).

    - ``Submitted``: the task id goes on the attempt, charged or waived by the job's
      policy (``canceled_after_accept`` / ``canceled_waived``), and the upstream is asked
      to stop it where the adapter can;
    - ``Succeeded`` (a synchronous upstream): the upstream did the work and bills it; the
      attempt ends ``succeeded``, charged or waived alike, its result not kept;
    - ``Failed``: the hold is released (``unanswered`` when the submission went out and
      no answer came, else ``not_accepted``), the upstream's error on the attempt;
    - ``None``: the hold released; ``not_accepted`` when the submission never went out
      (the step was refused before it), ``unanswered`` when the worker that sent it died
      and the job was claimed again (``sender_died``): the submission was under way for
      longer than a cancel waits, so the upstream may have the task, and may bill it.

    The record is read afresh and the answer applied to it on each try: a try that meets
    a Redis error is tried again for up to ``within_s`` (``JobStore.save_surely``); one
    applied whose answer was lost is recognised by the attempt's end on record."""
    ended: list[datetime] = []
    credential = 0

    async def settle() -> Stored:
        nonlocal credential
        stored = await lifecycle.store.get(job_id)
        if stored is None or not awaits_answer(stored, lease):
            raise SaveRefused("answered")
        record = stored.record
        credential = record.upstream.credential if record.upstream is not None else 0
        ended.append(_apply_late_answer(record, answer, sender_died))
        charge, spend = lifecycle.settlement(record, record.job.attempts[-1].charge_reason)
        mode = Settle.charge if charge is not None else Settle.release
        return await lifecycle.awaiting.settle(stored, lease, mode, charge, spend)

    def landed(record: JobRecord) -> bool:
        attempts = record.job.attempts
        return bool(attempts) and attempts[-1].completed_at in ended

    try:
        saved = await lifecycle.store.save_surely(settle, job_id, landed, within_s=within_s)
    except SaveRefused:
        return None
    await lifecycle.gate.release(saved.record)
    lifecycle.metrics.job_finished(saved.record.job)
    if isinstance(answer, Submitted):
        await lifecycle.cancel_upstream(saved, answer.provider_job_id, credential)
    return saved


def _apply_late_answer(
    record: JobRecord, answer: SubmitResult | None, sender_died: bool
) -> datetime:
    """End the attempt a canceled job left ``submitting`` by the upstream's ``answer`` (see
    :func:`answer_after_cancel`); the moment it ended."""
    attempt = record.job.attempts[-1]
    policy = (
        ChargeReason.canceled_after_accept
        if record.charge_accepted_work
        else ChargeReason.canceled_waived
    )
    if answer is not None:
        note_reported_cost(attempt, answer)
    if isinstance(answer, Submitted):
        attempt.provider_job_id = answer.provider_job_id
        end_attempt(attempt, AttemptStatus.failed, policy)
    elif isinstance(answer, Succeeded):
        end_attempt(attempt, AttemptStatus.succeeded, policy)
    elif isinstance(answer, Failed):
        reason = ChargeReason.unanswered if answer.unanswered else ChargeReason.not_accepted
        error = JobError(
            code=answer.code,
            message=answer.message,
            provider_code=answer.provider_code,
            retryable=answer.retryable,
        )
        end_attempt(attempt, AttemptStatus.failed, reason, error)
    else:
        unknown = ChargeReason.unanswered if sender_died else ChargeReason.not_accepted
        end_attempt(attempt, AttemptStatus.failed, unknown)
    assert attempt.completed_at is not None
    return attempt.completed_at
