"""The only writer of a job's terminal states and of the credit movement that goes with each.

=============  ==========================  ================================================
transition     job status                  credits
=============  ==========================  ================================================
succeed        ``succeeded``               charged (``ChargeReason.delivered``)
fail           ``failed`` (its error)      released (an upstream's result the gateway could
                                           not keep: ``undelivered``, its upstream cost on
                                           record)
cancel         ``canceled``                charged when the upstream had accepted the task
                                           and the policy charges accepted work
                                           (``canceled_after_accept``), else released
expire         ``failed`` (``upstream_     as cancel (``deadline_after_accept``)
               timeout``), past deadline
fall back      (stays running)             the hold moves to the next provider's price; a
                                           shortfall fails the job (``insufficient_credits``)
=============  ==========================  ================================================

A cancel that lands while a submission is under way ends the job ``canceled`` with its attempt
and credits left to the upstream's answer, which :meth:`Lifecycle.answer_after_cancel`
records and settles (``app.jobs.late_answers``).

"Accepted" means the current attempt has the upstream's task id (``provider_job_id``): from
then on the provider may bill the gateway's account whatever the tenant does, so by default a
job canceled or past its deadline then is charged its price. The policy is the tenant's
``charge_accepted_work`` (or the ``charge_accepted_work`` setting), copied onto the job when
it is created (``JobRecord.charge_accepted_work``). Every attempt that ends says whether and
why it was charged (``Attempt.charge_reason``); :meth:`Accounting.charge_for` decides the
amount (by the job's price rule: the work done for ``delivered``, the reservation otherwise;
see ``app.jobs.prices``), and every attempt's ``upstream_cost`` is settled with it. A
terminal save settles the credit hold in the same Lua script that writes the status
(``save_job.lua``) and appends the job to the upstream-spend stream for reconciliation; it
gives the upstream job slot back and, where the provider's document offers a way, asks the
upstream to stop a task no one wants any more (:meth:`Adapter.cancel`).

What follows a terminal save (giving the upstream slot back, remembering a result in the result
cache, asking the upstream to cancel) never fails the transition: the job is saved and done,
and an error there would only make its step, or the request waiting for it, answer an error for
a finished job. A Redis error there is tried again for as long as the save itself was
(``within_s``), then logged, as any other error is; a slot not given back lapses
(``SLOT_LAPSE_S``), a result not remembered is not served from the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from redis.exceptions import RedisError

from app.domain.errors import ErrorCode, GatewayError
from app.domain.models import (
    Attempt,
    AttemptStatus,
    ChargeReason,
    Job,
    JobError,
    JobOutput,
    JobRecord,
    JobStatus,
    utcnow,
)
from app.jobs.accounting import Accounting, note_quote
from app.jobs.gate import UpstreamGate, upstream_call
from app.jobs.late_answers import apply_late_answer, awaits_answer, end_attempt
from app.jobs.media_source import StoredMedia
from app.jobs.result_cache import ResultCache
from app.jobs.retries import tried_again
from app.jobs.submissions import under_way
from app.metrics import Metrics
from app.providers.base import SubmitResult, Submitted
from app.store.awaiting import AwaitingAnswers
from app.store.jobs import Charge, JobStore, SaveRefused, Schedule, Settle, Stored
from app.store.storage import OutputUnscheduled, QuotaExceeded, ScheduledOutputs

log = logging.getLogger(__name__)

OPEN_ATTEMPT = (AttemptStatus.submitting, AttemptStatus.running)


class _Unchanged:
    """A job's fields, its credits' and its attempts' as they are now, to put back exactly
    when a save refuses the change made to them since (ending the job changes nothing else of
    the record). A copy of each model's field values, not of the models: the save it guards
    is on the synchronous path, and a refusal is rare."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.attempts = list(job.attempts)
        self.models = [
            (model, dict(model.__dict__), set(model.__pydantic_fields_set__))
            for model in (job, job.credits, *job.attempts)
        ]

    def restore(self) -> None:
        for model, values, fields_set in self.models:
            model.__dict__.clear()
            model.__dict__.update(values)
            object.__setattr__(model, "__pydantic_fields_set__", fields_set)
        self.job.attempts[:] = self.attempts


def accepted(attempt: Attempt | None) -> bool:
    """The upstream gave this open attempt a task id: it may bill for it from now on."""
    return (
        attempt is not None
        and attempt.status in OPEN_ATTEMPT
        and attempt.provider_job_id is not None
    )


class Lifecycle:
    def __init__(
        self,
        store: JobStore,
        accounting: Accounting,
        gate: UpstreamGate,
        media: StoredMedia,
        metrics: Metrics,
        cache: ResultCache | None = None,
    ) -> None:
        self.store = store
        self.awaiting = AwaitingAnswers(store.scripts, retention_s=store.retention_s)
        self.accounting = accounting
        self.gate = gate
        self.media = media
        self.metrics = metrics
        self.cache = cache

    # -- terminal transitions ---------------------------------------------------------------

    async def succeed(
        self,
        stored: Stored,
        lease: str,
        output: JobOutput,
        written: ScheduledOutputs | None = None,
        *,
        within_s: float = 0.0,
    ) -> Stored:
        """End the job succeeded with ``output``. With ``written`` (outputs written under the
        ids its creation scheduled), the save counts them against the tenant's storage quota
        and may refuse them (``QuotaExceeded``, ``OutputUnscheduled``): the job is then put
        back as it was, for the failure that follows.

        The upstream delivered (and bills) this result: a save that meets a Redis error is
        tried again for up to ``within_s`` (``JobStore.save_surely``), rather than leaving
        the job to be run again; a synchronous upstream's attempt has no task id to poll, so
        it would be submitted, and paid, twice."""
        job = stored.record.job
        unchanged = _Unchanged(job) if written is not None else None
        attempt = job.attempts[-1]
        end_attempt(attempt, AttemptStatus.succeeded, ChargeReason.delivered)
        job.output = output
        job.status = JobStatus.succeeded
        job.progress = 1.0
        try:
            saved = await self._finish(
                stored, lease, ChargeReason.delivered, written, within_s=within_s
            )
        except (QuotaExceeded, OutputUnscheduled):
            assert unchanged is not None
            unchanged.restore()
            raise
        cache = self.cache
        if cache is not None:
            await self._follow_up(
                saved, "remembering its result", lambda: cache.remember(saved.record), within_s
            )
        return saved

    async def serve_cached(self, stored: Stored, lease: str, source: Job) -> Stored:
        """End a new job succeeded with ``source``'s result (the result cache found it): no
        upstream call; charged its hold, the tenant's share of the price for a hit."""
        job = stored.record.job
        job.output = source.output
        job.provider = source.provider
        job.cache = "hit"
        job.status = JobStatus.succeeded
        job.progress = 1.0
        job.started_at = job.created_at
        return await self._finish(stored, lease, ChargeReason.cache_hit)

    async def fail(
        self, stored: Stored, lease: str, error: JobError, *, within_s: float = 0.0
    ) -> Stored:
        """End the job failed; its hold is released. Its attempts are already closed. With
        ``within_s``, a save that meets a Redis error is tried again (as :meth:`succeed`'s):
        for a failure that must not leave the job to be submitted again, such as an
        upstream's result the gateway could not keep."""
        job = stored.record.job
        job.status = JobStatus.failed
        job.error = error
        return await self._finish(stored, lease, None, within_s=within_s)

    async def cancel(
        self, stored: Stored, lease: str | None = None, message: str = "canceled by the client"
    ) -> Stored:
        """Cancel a job that has not finished (raises ``SaveRefused`` when it moved meanwhile).

        A client's cancel needs no lease: the save checks the version, and a worker's step in
        progress finds its own save refused. A worker ending a job at its ``Cancel-After``
        holds the lease.

        A client's cancel of a job whose submission is under way (``under_way``: a worker
        holds it, its attempt ``submitting``) ends it ``canceled`` with its attempt left
        ``submitting`` and its credits held: the upstream's answer decides them, recorded by
        the worker (:meth:`answer_after_cancel`). One of a job whose
        attempt is ``submitting`` with no worker holding it is saved only while still none
        does: a worker that claimed it since (a claim does not move the version) may be
        sending the submission, and the cancel is refused (``leased``) to be decided again."""
        job = stored.record.job
        attempt = stored.record.current_attempt
        submitting = (
            lease is None and attempt is not None and attempt.status is AttemptStatus.submitting
        )
        sending = submitting and under_way(stored)
        job.status = JobStatus.canceled
        error = JobError(code=ErrorCode.job_canceled, message=message)
        if sending:
            assert attempt is not None
            attempt.error = error  # its status and charge wait for the upstream's answer
            job.completed_at = utcnow()
            job.queue_position = job.upstream_eta_s = None
            return await self.awaiting.cancel(stored)
        return await self._abandon(
            stored,
            lease,
            error,
            ChargeReason.canceled_after_accept,
            ChargeReason.canceled_waived,
            unleased=submitting,
        )

    async def expire(self, stored: Stored, lease: str, deadline_s: float) -> Stored:
        """Fail a job that outlived its deadline."""
        job = stored.record.job
        error = JobError(
            code=ErrorCode.upstream_timeout,
            message=f"the job did not finish within {deadline_s:g} s",
        )
        job.status = JobStatus.failed
        job.error = error
        return await self._abandon(
            stored,
            lease,
            error,
            ChargeReason.deadline_after_accept,
            ChargeReason.deadline_waived,
        )

    # -- fallback -----------------------------------------------------------------------------

    async def fall_back(self, stored: Stored, lease: str) -> Stored | None:
        """Move the job to the next provider of its plan, its hold to that provider's price.
        ``None`` when moved (the caller schedules the next step); the job saved failed when
        the tenant cannot afford the new price."""
        record = stored.record
        job = record.job
        previous, following = record.plan[0], record.plan[1]
        quote = await self.accounting.requote(record, following)
        if quote.amount != job.credits.reserved:
            short = await self.accounting.move_hold(record.tenant_id, job.id, quote)
            if short is not None:
                error = JobError(
                    code=ErrorCode.insufficient_credits,
                    message=f"falling back to {following} needs {quote.amount} credits; "
                    f"{short.available} are available",
                )
                return await self.fail(stored, lease, error)
        note_quote(record, quote)
        await self.gate.release(record)
        record.plan.pop(0)
        record.poll_streak = 0
        self.metrics.fallback(job.operation.value, previous, following)
        return None

    # -- the common end -------------------------------------------------------------------

    async def _abandon(
        self,
        stored: Stored,
        lease: str | None,
        error: JobError,
        charged: ChargeReason,
        waived: ChargeReason,
        *,
        unleased: bool = False,
    ) -> Stored:
        """End a job no one waits for any more (canceled, past its deadline); ``unleased``:
        only while no worker holds it (``JobStore.save``)."""
        record = stored.record
        attempt = record.current_attempt
        task = attempt.provider_job_id if attempt is not None and accepted(attempt) else None
        credential = record.upstream.credential if record.upstream is not None else 0
        reason: ChargeReason | None = None
        if attempt is not None and attempt.status in OPEN_ATTEMPT:
            if task is None:
                reason = ChargeReason.not_accepted
            else:
                reason = charged if record.charge_accepted_work else waived
            end_attempt(attempt, AttemptStatus.failed, reason, error)
        saved = await self._finish(stored, lease, reason, unleased=unleased)
        if task is not None:
            await self._follow_up(
                saved,
                "asking the upstream to cancel",
                lambda: self.cancel_upstream(saved, task, credential),
            )
        return saved

    async def _finish(
        self,
        stored: Stored,
        lease: str | None,
        reason: ChargeReason | None,
        written: ScheduledOutputs | None = None,
        *,
        within_s: float = 0.0,
        unleased: bool = False,
    ) -> Stored:
        """Save the job terminal with its credits settled; give its upstream slot back. With
        ``within_s``, a save that meets a Redis error is tried again for up to that long; one
        applied whose answer was lost is recognised by the job's end on record (its status
        and the moment it ended, as this save wrote them)."""
        record = stored.record
        job = record.job
        job.completed_at = utcnow()
        job.queue_position = job.upstream_eta_s = None  # in no queue any more
        charge, spend = self.settlement(record, reason)

        def save() -> Awaitable[Stored]:
            return self.store.save(
                stored,
                schedule=Schedule.release,
                lease=lease,
                unleased=unleased,
                settle=Settle.charge if charge is not None else Settle.release,
                charge=charge,
                spend=spend,
                outputs=written,
            )

        if within_s > 0:
            status, ended = job.status, job.completed_at
            saved = await self.store.save_surely(
                save,
                job.id,
                lambda found: found.job.status is status and found.job.completed_at == ended,
                within_s=within_s,
            )
        else:
            saved = await save()
        await self._follow_up(
            saved,
            "giving its upstream slot back",
            lambda: self.gate.release(saved.record),
            within_s,
        )
        self.metrics.job_finished(job)
        return saved

    async def _follow_up(
        self,
        saved: Stored,
        what: str,
        step: Callable[[], Awaitable[None]],
        within_s: float = 0.0,
    ) -> None:
        """A step after the job's terminal save: a Redis error is tried again for up to
        ``within_s``; then, or on any other error, it is logged and the transition goes on
        (see the module docstring)."""
        job_id = saved.record.job.id
        try:
            await tried_again(step, within_s=within_s, what=what, about=job_id)
        except (RedisError, OSError) as exc:
            log.warning("job %s: %s failed after its terminal save (%s); left", job_id, what, exc)
        except Exception:
            log.exception("job %s: %s failed after its terminal save; left", job_id, what)

    async def answer_after_cancel(
        self,
        job_id: str,
        lease: str,
        answer: SubmitResult | None,
        *,
        within_s: float,
        sender_died: bool = False,
    ) -> Stored | None:
        """Record the upstream's ``answer`` to the submission sent under ``lease`` on its job,
        canceled meanwhile (:meth:`~app.jobs.self.Lifecycle.cancel`), and settle the job:
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
            stored = await self.store.get(job_id)
            if stored is None or not awaits_answer(stored, lease):
                raise SaveRefused("answered")
            record = stored.record
            credential = record.upstream.credential if record.upstream is not None else 0
            ended.append(apply_late_answer(record, answer, sender_died))
            charge, spend = self.settlement(record, record.job.attempts[-1].charge_reason)
            mode = Settle.charge if charge is not None else Settle.release
            return await self.awaiting.settle(stored, lease, mode, charge, spend)

        def landed(record: JobRecord) -> bool:
            attempts = record.job.attempts
            return bool(attempts) and attempts[-1].completed_at in ended

        try:
            saved = await self.store.save_surely(settle, job_id, landed, within_s=within_s)
        except SaveRefused:
            return None
        await self.gate.release(saved.record)
        self.metrics.job_finished(saved.record.job)
        if isinstance(answer, Submitted):
            await self.cancel_upstream(saved, answer.provider_job_id, credential)
        return saved

    def settlement(
        self, record: JobRecord, reason: ChargeReason | None
    ) -> tuple[Charge | None, str]:
        """What a job ending for ``reason`` is charged (``None``: its hold is released) and its
        upstream-spend record, every attempt's ``upstream_cost`` settled; the charge is noted
        on the job as the save will make it."""
        charge = self.accounting.charge_for(record, reason)
        if charge is not None and charge.amount <= 0:
            charge = None
        self.accounting.settle_upstream_costs(record)
        # as stored; the script charges it from the hold
        record.job.credits.charged = charge.amount if charge is not None else 0
        return charge, self.accounting.spend_record(record)

    async def cancel_upstream(self, stored: Stored, task: str, credential: int) -> None:
        """Ask the upstream to stop ``task`` where its adapter can; a refusal is logged."""
        record = stored.record
        adapter = self.gate.providers[record.plan[0]]
        try:
            call = upstream_call(
                record, self.media.for_job(record.job.id, record.tenant_id), credential
            )
            if await adapter.cancel(call, task):
                log.info("job %s: asked %s to cancel task %s", record.job.id, adapter.name, task)
        except GatewayError as exc:
            log.warning("job %s: %s did not take the cancel: %s", record.job.id, adapter.name, exc)
