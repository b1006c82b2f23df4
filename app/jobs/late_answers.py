"""How an attempt ends, and how an upstream's answer that comes after a cancel ends it.

**A cancel that lands while a submission is under way** (a worker holds the job and its
attempt is ``submitting``: the upstream has not answered) cannot know whether the upstream
accepts the task. It ends the job ``canceled`` and leaves the rest to the upstream's answer
(:meth:`~app.jobs.lifecycle.Lifecycle.cancel`, ``app/store/awaiting.py``): the credit hold
stays open, and the worker that holds the job records the answer and settles the job in one
save (:meth:`~app.jobs.lifecycle.Lifecycle.answer_after_cancel`, the only writer of terminal
states): an accepted task goes on the attempt, charged or waived by the policy as any task
accepted before a cancel, and is asked to stop upstream; a synchronous result counts the same
(not kept); a refusal, or no answer, releases the hold. Whichever way the cancel and the
acceptance land, the task is on the record. This module holds what writes nothing: whether a
job awaits an answer, and how an answer ends its attempt.
"""

from __future__ import annotations

from datetime import datetime

from app.domain.models import (
    Attempt,
    AttemptStatus,
    ChargeReason,
    JobError,
    JobRecord,
    JobStatus,
    utcnow,
)
from app.jobs.accounting import note_reported_cost
from app.providers.base import Failed, SubmitResult, Submitted, Succeeded
from app.store.jobs import Stored


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


def end_attempt(
    attempt: Attempt,
    status: AttemptStatus,
    reason: ChargeReason,
    error: JobError | None = None,
) -> None:
    """Close an attempt: its final status, why it was (not) charged, and its error."""
    attempt.status = status
    attempt.charge_reason = reason
    attempt.completed_at = utcnow()
    if error is not None:
        attempt.error = error


def apply_late_answer(
    record: JobRecord, answer: SubmitResult | None, sender_died: bool
) -> datetime:
    """End the attempt a canceled job left ``submitting`` by the upstream's ``answer`` (see
    :meth:`~app.jobs.lifecycle.Lifecycle.answer_after_cancel`); the moment it ended."""
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
