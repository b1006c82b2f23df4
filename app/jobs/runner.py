"""Advancing one leased job by one step: submit, poll, apply the answer.

The worker and the API's inline path (``Prefer: wait``) both call :meth:`JobRunner.step`.
Crash safety rests on the order of writes:

1. the attempt is recorded as ``submitting`` *before* the upstream call;
2. the upstream's job id is recorded as soon as it is known (``running``);
3. a worker that resumes a job polls a ``running`` attempt and never submits it again. Only an
   attempt still ``submitting`` (the worker died during the call, so no upstream id is known)
   is submitted again; synchronous upstreams have nothing to poll anyway.

Every write checks the lease and the version (``save_job.lua``): a worker whose lease expired,
or a job canceled meanwhile, makes the write fail with ``SaveRefused`` and the step stops. A job
canceled while its submission was under way awaits the upstream's answer to it: the step that
sent it records the answer on the canceled job and settles it
(:meth:`~app.jobs.lifecycle.Lifecycle.answer_after_cancel`), and one that finds it canceled
before sending, or claims it after the sender died, settles it without an answer.

Whether a call may go now is :class:`~app.jobs.gate.UpstreamGate`'s decision (budget and
circuit); every terminal state and credit movement is :class:`~app.jobs.lifecycle.Lifecycle`'s.

**An accepted task is never abandoned while it can still be read.** Once the upstream gave a
task id, a poll that does not read the task's state (the adapter raises ``UpstreamError`` or
answers ``PollTrouble``: 5xx, 429, timeouts, dropped connections, bodies that do not parse,
failed result downloads) polls the same task again after a capped, jittered backoff
(:func:`poll_backoff`), counted in ``Attempt.poll_errors``, until the job's deadline. Only a
``Failed`` answer — the upstream's own word that the task failed or no longer exists — or a
submission that did not get through leads to a retry or a fallback.

A result the upstream delivered is kept, and paid for, once (``app.jobs.delivery``); the
job's lease is kept alive while a slow upstream call runs (``app.jobs.lease_renewal``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.domain.errors import ErrorCode, GatewayError, UpstreamError
from app.domain.models import (
    Attempt,
    AttemptStatus,
    ChargeReason,
    Job,
    JobError,
    JobRecord,
    JobStatus,
    UpstreamTurn,
    WebhookEvent,
    utcnow,
)
from app.domain.operations import PARAMS
from app.jobs.accounting import note_reported_cost
from app.jobs.delivery import keep
from app.jobs.gate import Go, Requeue, UpstreamGate, upstream_call
from app.jobs.late_answers import end_attempt
from app.jobs.lease_renewal import renewing
from app.jobs.lifecycle import Lifecycle
from app.jobs.media_source import FetchSlotsFull
from app.jobs.outputs import Outputs
from app.jobs.upstream_callbacks import CallbackUrl
from app.metrics import Metrics
from app.providers.base import (
    Adapter,
    Failed,
    PollTrouble,
    Progress,
    SubmitResult,
    Submitted,
    Succeeded,
)
from app.providers.registry import ProviderRegistry
from app.store.jobs import JobStore, SaveRefused, Schedule, Stored, now_ms

log = logging.getLogger(__name__)

MAX_TRIES_PER_PROVIDER = 3
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
FETCH_RETRY_S = 0.5
"""A job whose tenant's fetch slots are all taken looks again after 1 to 2 times this."""
STEP_GRACE_S = 10.0
"""How long a stopping process lets the job steps it runs finish before it cancels them (and
closes the clients they use): the worker's (``Worker.stop``) and those run for waiting clients
(``JobService.drain``)."""
POLL_BACKOFF_CAP_S = 30.0
"""The longest wait between two polls of a task whose reads keep failing (shorter where the
upstream drops tasks not polled in time: ``Adapter.max_poll_gap_s``)."""

StepResult = Submitted | Progress | Succeeded | Failed | PollTrouble

UPSTREAM_TROUBLE = frozenset(
    {ErrorCode.provider_unavailable, ErrorCode.upstream_timeout, ErrorCode.upstream_failed}
)
"""Failures that are the upstream's own trouble: they count against its circuit breaker."""


@dataclass(frozen=True)
class Deadlines:
    """How long a job may take from creation to a terminal status: its operation's time, plus
    the processing time the document gives each second of its audio or video input
    (``per_media_second``, with the input's length as probed at submission)."""

    default_s: float = 1800.0
    per_operation: Mapping[str, float] = field(default_factory=dict)
    per_media_second: Mapping[str, float] = field(default_factory=dict)

    def of(self, job: Job, media_s: float | None = None) -> float:
        base = self.per_operation.get(job.operation.value, self.default_s)
        return base + self.per_media_second.get(job.operation.value, 0.0) * (media_s or 0.0)

    def passed(self, job: Job, media_s: float | None = None) -> bool:
        return (utcnow() - job.created_at).total_seconds() > self.of(job, media_s)


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        providers: ProviderRegistry,
        gate: UpstreamGate,
        lifecycle: Lifecycle,
        outputs: Outputs,
        metrics: Metrics,
        lease_s: float,
        deadlines: Deadlines | None = None,
        *,
        callback_url: CallbackUrl | None = None,
    ) -> None:
        self.deadlines = deadlines or Deadlines()
        self.callback_url = callback_url
        """Upstream callbacks on: the URL a submission carries (None where a provider takes
        none)."""
        self.store = store
        self.providers = providers
        self.gate = gate
        self.lifecycle = lifecycle
        self.media = lifecycle.media
        self.outputs = outputs
        self.metrics = metrics
        self.lease_s = lease_s

    async def step(self, stored: Stored) -> Stored:
        """Do the next thing the job needs; returns the saved state (lease released)."""
        lease = stored.lease
        assert lease is not None, "only a leased job can be advanced"
        job_id = stored.record.job.id
        sent: list[SubmitResult] = []  # the upstream's answer to a submission this step sent
        async with renewing(self.store, job_id, lease, self.lease_s):
            try:
                return await self._step(stored, lease, sent)
            except SaveRefused:
                # Canceled while this step had the submission under way: the answer (none if
                # it never went out, or if it went out from a worker that died) is recorded on
                # the canceled job, which is settled.
                answer = sent[0] if sent else None
                late = await self.lifecycle.answer_after_cancel(
                    job_id,
                    lease,
                    answer,
                    within_s=self.lease_s,
                    sender_died=stored.record.job.status.terminal,
                )
                if late is not None:
                    return late
                if isinstance(answer, Submitted):
                    log.warning(
                        "job %s was taken over while %s accepted its task %s; the task is "
                        "not on record",
                        job_id,
                        stored.record.job.attempts[-1].provider,
                        answer.provider_job_id,
                    )
                # Canceled meanwhile (the cancel took the lease, so the refusal may read
                # ``lease_lost``): the upstream slot this step may have taken goes with it.
                # A job merely reclaimed by another worker keeps its slot.
                status = await self.store.status_of(job_id)
                if status is None or status.terminal:
                    await self.gate.release(stored.record)
                raise

    async def _step(self, stored: Stored, lease: str, sent: list[SubmitResult]) -> Stored:
        job = stored.record.job
        if job.status.terminal:  # claimed awaiting an answer its sender died with
            raise SaveRefused("terminal")
        if stored.due_ms is not None:  # claimed from the due-queue: how late the queue runs
            self.gate.step_began((now_ms() - stored.due_ms) / 1000)
        cancel_at = stored.record.cancel_at
        if cancel_at is not None and utcnow() >= cancel_at:
            message = "canceled at the time its Cancel-After header set"
            return await self.lifecycle.cancel(stored, lease, message)
        measure = stored.record.measure
        media_s = measure.seconds if measure is not None else None
        if self.deadlines.passed(job, media_s):
            return await self.lifecycle.expire(stored, lease, self.deadlines.of(job, media_s))
        if await self._waits_for_inputs(stored.record):
            return await self._save_due(stored, lease, FETCH_RETRY_S * random.uniform(1, 2))
        persisted = stored.record.upstream
        clearance = await self.gate.clearance(stored.record)
        attempt = stored.record.current_attempt
        submitting = attempt is None or attempt.status is not AttemptStatus.running
        if not isinstance(clearance, Go):  # requeued until the budget allows
            if submitting:  # its place in the gateway's line for an upstream slot
                job.queue_position = clearance.queue_position
            return await self._save_due(stored, lease, clearance.after_s)
        if submitting:
            job.queue_position = None
        stored, result = await self._call_upstream(stored, lease, clearance, persisted)
        if isinstance(result, Requeue):  # late for its turn: its new turn is further off
            return await self._save_due(stored, lease, result.after_s)
        if submitting:
            assert isinstance(result, Submitted | Succeeded | Failed)
            sent.append(result)
        return await self._apply(stored, lease, result)

    async def _waits_for_inputs(self, record: JobRecord) -> bool:
        """Before a submission, fetch the URL inputs its adapter reads as bytes, under one of
        the tenant's fetch slots (``StoredMedia.prefetch``) and before any upstream budget is
        taken: a slow URL holds no upstream slot, and while the tenant's fetch slots are all
        taken its jobs wait in the queue, not in a worker task (True). An input that cannot be
        fetched fails the submission without being fetched again."""
        attempt = record.current_attempt
        if attempt is not None and attempt.provider_job_id is not None:
            return False  # polling: the inputs went up with the submission
        job = record.job
        model = PARAMS[job.operation]
        if not model.media_fields:  # no input to fetch (a prompt): not validated again
            return False
        params = model(**record.params)
        adapter = self.providers[record.plan[0]]
        refs = [ref for ref in adapter.reads(job.operation, params) if ref.url is not None]
        if not refs:
            return False
        rows = adapter.media_limits.get(job.operation, {})
        caps: dict[str, int] = {}
        for name, ref in params.media().items():
            cap = rows[name].max_bytes if name in rows else None
            if ref.url is not None and cap is not None:
                caps[ref.url] = cap
        try:
            await self.media.prefetch(record.tenant_id, job.id, refs, caps)
        except FetchSlotsFull:
            return True
        except GatewayError:
            return False  # kept: the submission's read raises it
        return False

    # -- the upstream call --------------------------------------------------------------

    async def _call_upstream(
        self, stored: Stored, lease: str, go: Go, persisted: UpstreamTurn | None
    ) -> tuple[Stored, StepResult | Requeue]:
        record = stored.record
        job = record.job
        attempt = record.current_attempt
        provider = record.plan[0]
        if attempt is None or attempt.status in (AttemptStatus.failed, AttemptStatus.succeeded):
            attempt = Attempt(provider=provider)
            job.attempts.append(attempt)
            job.status = JobStatus.running
            job.provider = provider
            job.started_at = job.started_at or utcnow()
            record.poll_streak = 0
            stored = await self.store.save(
                stored, schedule=Schedule.keep, lease=lease, event=_started(job)
            )
        elif attempt.status is AttemptStatus.submitting and record.upstream != persisted:
            # The first attempt (created with the job) or a submit cut short: the credential
            # it goes out on is on record before the upstream hears of it.
            stored = await self.store.save(
                stored, schedule=Schedule.keep, lease=lease, event=_started(job)
            )
        adapter = self.providers[provider]
        task = attempt.provider_job_id
        callback_url = None
        if self.callback_url is not None and task is None:  # submits only
            callback_url = self.callback_url(provider, job.id)
        media = self.media.for_job(job.id, record.tenant_id)
        call = upstream_call(record, media, go.credential, callback_url)
        if task is None:
            refused = await self.gate.circuit_refusal(provider, job.id)
            if refused is not None:
                return stored, refused
        on_time = await self.gate.on_time(record, go)
        if isinstance(on_time, Requeue):
            return stored, on_time
        started = time.perf_counter()
        upstream_trouble = False
        result: StepResult
        try:
            result = await adapter.poll(call, task) if task else await adapter.submit(call)
        except UpstreamError as exc:
            upstream_trouble = True
            if task is not None:  # the task was accepted: read it again, never resubmit
                result = PollTrouble(exc.detail)
            else:
                result = Failed(exc.code, exc.detail, retryable=True, unanswered=exc.unanswered)
        except GatewayError as exc:  # an input that can no longer be read
            result = Failed(exc.code, exc.detail, retryable=False)
        if task is not None and stored.due_ms is not None:  # claimed due: how late it ran
            self.gate.poll_done(provider, (now_ms() - stored.due_ms) / 1000)
        if call.conformed:  # what the adapter fitted to the provider's limits
            attempt.conformed = list(call.conformed)
        self.metrics.upstream_request(
            provider, "poll" if task else "submit", result, time.perf_counter() - started
        )
        if isinstance(result, Failed) and result.code in UPSTREAM_TROUBLE:
            upstream_trouble = True
        await self.gate.record(provider, job.id, ok=not upstream_trouble)
        return stored, result

    async def _apply(self, stored: Stored, lease: str, result: StepResult) -> Stored:
        record = stored.record
        job = record.job
        attempt = job.attempts[-1]
        note_reported_cost(attempt, result)  # what the upstream says the task costs
        if isinstance(result, Succeeded | Failed):  # no longer in any upstream queue
            job.queue_position = job.upstream_eta_s = None
        if isinstance(result, Submitted):
            attempt.provider_job_id = result.provider_job_id
            attempt.status = AttemptStatus.running
            return await self._save_accepted(stored, lease, result)
        if isinstance(result, Progress):
            before = job.progress
            job.progress = result.fraction if result.fraction is not None else job.progress
            job.queue_position = result.queue_position
            job.upstream_eta_s = result.eta_s
            record.poll_streak = 0
            moved = WebhookEvent.progress if job.progress != before else None
            return await self._save_due(stored, lease, result.poll_after_s, moved)
        if isinstance(result, PollTrouble):
            attempt.poll_errors += 1
            record.poll_streak += 1
            adapter = self.providers[attempt.provider]
            delay = poll_backoff(adapter, record.poll_streak, result.retry_after_s)
            log.warning(
                "job %s: poll %d of %s task %s did not read its state (%s); again in %.1f s",
                job.id,
                attempt.poll_errors,
                attempt.provider,
                attempt.provider_job_id,
                result.message,
                delay,
            )
            return await self._save_due(stored, lease, delay)
        if isinstance(result, Succeeded):
            kept = await keep(
                self.lifecycle, self.outputs, stored, lease, result, within_s=self.lease_s
            )
            if isinstance(kept, Stored):
                return kept
            # the upstream delivered, and bills, a result the tenant does not get: the job
            # ends here, its save tried again as a success's is, never left to run again
            error = _error(kept)
            end_attempt(attempt, AttemptStatus.failed, ChargeReason.undelivered, error)
            return await self.lifecycle.fail(stored, lease, error, within_s=self.lease_s)
        if attempt.provider_job_id is not None:
            reason = ChargeReason.upstream_failed
        elif result.unanswered:  # it went out: the upstream may have it, and may bill it
            reason = ChargeReason.unanswered
        else:
            reason = ChargeReason.not_accepted
        end_attempt(attempt, AttemptStatus.failed, reason, _error(result))
        return await self._after_failure(stored, lease, result)

    async def _save_accepted(self, stored: Stored, lease: str, accepted: Submitted) -> Stored:
        """Save the task id the upstream just accepted (the attempt already ``running`` with
        it). The upstream bills the task from now on, and a job whose attempt stays
        ``submitting`` is submitted again: a save that meets a Redis error is tried again for
        as long as a lease renewed before the error could still be ours, and a save applied
        whose answer was lost is recognised by the task on record
        (:meth:`~app.store.jobs.JobStore.save_surely`)."""
        provider = stored.record.job.attempts[-1].provider
        task = accepted.provider_job_id
        return await self.store.save_surely(
            lambda: self._save_due(stored, lease, accepted.poll_after_s),
            stored.record.job.id,
            lambda record: _holds(record, provider, task),
            within_s=self.lease_s,
        )

    async def _after_failure(self, stored: Stored, lease: str, failure: Failed) -> Stored:
        record = stored.record
        job = record.job
        if failure.retryable and len(record.plan) > 1:
            ended = await self.lifecycle.fall_back(stored, lease)
            return ended if ended is not None else await self._save_due(stored, lease, 0)
        tries = sum(1 for a in job.attempts if a.provider == record.plan[0])
        if failure.retryable and tries < MAX_TRIES_PER_PROVIDER:
            await self.gate.release(record)
            delay = failure.retry_after_s or _backoff(tries)
            return await self._save_due(stored, lease, delay)
        error = job.attempts[-1].error
        assert error is not None
        return await self.lifecycle.fail(stored, lease, error)

    async def _save_due(
        self, stored: Stored, lease: str, after_s: float, event: WebhookEvent | None = None
    ) -> Stored:
        due = now_ms() + int(after_s * 1000)
        cancel_at = stored.record.cancel_at
        if cancel_at is not None:  # looked at again when it is to be canceled, at the latest
            due = min(due, int(cancel_at.timestamp() * 1000))
        return await self.store.save(
            stored, schedule=Schedule.due, due_ms=due, lease=lease, event=event
        )


def _error(failure: Failed) -> JobError:
    """The attempt's error for ``failure``."""
    return JobError(
        code=failure.code,
        message=failure.message,
        provider_code=failure.provider_code,
        retryable=failure.retryable,
    )


def _started(job: Job) -> WebhookEvent | None:
    """``job.started`` for the save that sends a job's first attempt on its way."""
    first = len(job.attempts) == 1 and job.attempts[0].provider_job_id is None
    return WebhookEvent.started if first else None


def _holds(record: JobRecord, provider: str, task: str) -> bool:
    """Whether the record has an attempt at ``provider`` with the upstream's task ``task``."""
    return any(a.provider == provider and a.provider_job_id == task for a in record.job.attempts)


def poll_backoff(adapter: Adapter, streak: int, retry_after_s: float | None) -> float:
    """The wait before polling again after ``streak`` polls in a row that did not read the
    task: the poll interval doubled per failure, jittered, at most ``POLL_BACKOFF_CAP_S``
    (and never past the upstream's ``max_poll_gap_s``); an upstream's ``Retry-After`` is
    honoured within that gap."""
    cap = POLL_BACKOFF_CAP_S
    if adapter.max_poll_gap_s is not None:
        cap = min(cap, adapter.max_poll_gap_s)
    base = max(adapter.config.poll_interval_s, 0.05)
    delay: float = min(cap, base * 2.0 ** max(0, streak - 1)) * random.uniform(0.75, 1.0)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, cap))
    return delay


def _backoff(tries: int) -> float:
    """Full-jitter exponential backoff."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**tries))
