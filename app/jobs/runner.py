"""Advancing one leased job by one step: submit, poll, store the outcome.

The worker and the API's inline path (``Prefer: wait``) both call :meth:`JobRunner.step`.
Crash safety rests on the order of writes:

1. the attempt is recorded as ``submitting`` *before* the upstream call;
2. the upstream's job id is recorded as soon as it is known (``running``);
3. a worker that resumes a job polls a ``running`` attempt and never submits it again. Only an
   attempt still ``submitting`` (the worker died during the call, so no upstream id is known)
   is submitted again; synchronous upstreams have nothing to poll anyway.

Every write checks the lease and the version (``save_job.lua``): a worker whose lease expired,
or a job canceled meanwhile, makes the write fail with ``SaveRefused`` and the step stops.

Before any upstream request the job reserves it in the provider's budget (``UpstreamBudgets``):
the reservation names the pool credential and when the request may go. A near reservation is
waited out in the step; a far one puts the job back in the due-queue until shortly before it
(``record.upstream`` remembers it), and a job whose provider runs no more jobs at once waits in
the queue for a slot. The credential is recorded before the attempt is submitted, so a resumed
attempt polls (or resubmits, idempotently) on the same account. A submission reserves as many
requests as it makes (``UpstreamLimit.requests_per_submit``); where an upstream drops a job
that is not polled in time, a credential runs only as many jobs as its rate keeps polled
(``UpstreamLimit.jobs_at_once``). A job's slot is given back when it ends or is canceled.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from app.blobs import BlobStore
from app.domain.errors import ErrorCode, GatewayError, UpstreamError
from app.domain.models import (
    Artifact,
    Attempt,
    AttemptStatus,
    Job,
    JobError,
    JobOutput,
    JobStatus,
    UpstreamSlot,
    new_artifact_id,
    utcnow,
)
from app.domain.operations import PARAMS
from app.jobs.accounting import Accounting
from app.jobs.media_source import StoredMedia
from app.jobs.probe import duration_s
from app.jobs.upstream_callbacks import CallbackUrl
from app.metrics import Metrics
from app.providers.base import (
    Adapter,
    Call,
    Failed,
    OutputFile,
    Progress,
    Submitted,
    Succeeded,
)
from app.providers.registry import ProviderRegistry
from app.store.circuits import Circuits
from app.store.files import BlobMeta, FileIndex
from app.store.jobs import JobStore, SaveRefused, Schedule, Settle, Stored, now_ms
from app.store.upstream_budgets import Budget, UpstreamBudgets

MAX_TRIES_PER_PROVIDER = 3
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
RATE_MARGIN = 0.8
"""Share of a documented upstream rate the gateway uses: requests sent up to 250 ms late
(a busy event loop) still never make a one-second window exceed the documented rate."""
INLINE_WAIT_S = 1.0
"""A reserved request at most this far off is waited for in the step; later ones requeue."""
EARLY_WAKE_S = 0.05
SLOTS_FULL_RETRY_S = 0.5

StepResult = Submitted | Progress | Succeeded | Failed

UPSTREAM_TROUBLE = frozenset(
    {ErrorCode.provider_unavailable, ErrorCode.upstream_timeout, ErrorCode.upstream_failed}
)
"""Failures that are the upstream's own trouble: they count against its circuit breaker."""


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        providers: ProviderRegistry,
        media: StoredMedia,
        blobs: BlobStore,
        files: FileIndex,
        metrics: Metrics,
        accounting: Accounting,
        budgets: UpstreamBudgets,
        circuits: Circuits,
        lease_s: float,
        deadlines: Deadlines | None = None,
        *,
        callback_url: CallbackUrl | None = None,
    ) -> None:
        self.deadlines = deadlines or Deadlines()
        self.callback_url = callback_url
        """Upstream callbacks on: the URL a submission carries (None where a provider takes
        none)."""
        self.circuits = circuits
        self.accounting = accounting
        self.budgets = budgets
        self.store = store
        self.providers = providers
        self.media = media
        self.blobs = blobs
        self.files = files
        self.metrics = metrics
        self.lease_s = lease_s

    async def step(self, stored: Stored) -> Stored:
        """Do the next thing the job needs; returns the saved state (lease released)."""
        lease = stored.lease
        assert lease is not None, "only a leased job can be advanced"
        async with self._renewing(stored.record.job.id, lease):
            try:
                return await self._step(stored, lease)
            except SaveRefused:
                # Canceled meanwhile (the cancel took the lease, so the refusal may read
                # ``lease_lost``): the upstream slot this step may have taken goes with it.
                # A job merely reclaimed by another worker keeps its slot.
                status = await self.store.status_of(stored.record.job.id)
                if status is None or status.terminal:
                    await self.release_budget(stored)
                raise

    async def _step(self, stored: Stored, lease: str) -> Stored:
        if self.deadlines.passed(stored.record.job):
            return await self._past_deadline(stored, lease)
        persisted = stored.record.upstream
        credential = await self._take_budget(stored, lease)
        if isinstance(credential, Stored):  # requeued until the budget allows
            return credential
        stored, result = await self._call_upstream(stored, lease, credential, persisted)
        return await self._apply(stored, lease, result)

    async def _past_deadline(self, stored: Stored, lease: str) -> Stored:
        """Fail a job that outlived its deadline; its credits are released with it."""
        job = stored.record.job
        await self.release_budget(stored)
        attempt = job.attempts[-1] if job.attempts else None
        error = JobError(
            code=ErrorCode.upstream_timeout,
            message=f"the job did not finish within {self.deadlines.of(job):g} s",
        )
        if attempt is not None and attempt.status in (
            AttemptStatus.submitting,
            AttemptStatus.running,
        ):
            attempt.status = AttemptStatus.failed
            attempt.error = error
            attempt.completed_at = utcnow()
        job.status = JobStatus.failed
        job.error = error
        return await self._finish(stored, lease)

    # -- upstream budget ----------------------------------------------------------------

    def _budget(self, adapter: Adapter, stored: Stored) -> Budget | None:
        binding = adapter.bindings[stored.record.job.operation]
        limit = adapter.upstream_limit(binding.limit)
        if limit is None:
            return None
        rate = limit.rate_per_s * RATE_MARGIN if limit.rate_per_s else None
        return Budget(
            provider=adapter.name,
            limit=binding.limit,
            credentials=max(1, len(adapter.config.credentials)),
            rate_per_s=rate,
            concurrent_jobs=limit.jobs_at_once(rate),
            requests_per_submit=limit.requests_per_submit,
        )

    async def _take_budget(self, stored: Stored, lease: str) -> int | Stored:
        """The credential to call the upstream with, once its budget allows the request; or
        the job saved back into the due-queue to wait for it. ``record.upstream`` is set to
        the credential (saved before a submit goes out, see :meth:`_call_upstream`)."""
        record = stored.record
        adapter = self.providers[record.plan[0]]
        slot = record.upstream
        budget = self._budget(adapter, stored)
        if budget is None:
            pool = len(adapter.config.credentials)
            if slot is None and pool > 1:
                slot = record.upstream = UpstreamSlot(
                    credential=zlib.crc32(record.job.id.encode()) % pool
                )
            return slot.credential if slot is not None else 0
        if slot is not None and slot.ready_at_ms is not None:
            wait_s = (slot.ready_at_ms - now_ms()) / 1000
            if wait_s > INLINE_WAIT_S:
                return await self._save_due(stored, lease, wait_s - EARLY_WAKE_S)
        else:
            bound = slot.credential if slot is not None else None
            attempt = record.current_attempt
            polling = attempt is not None and attempt.status is AttemptStatus.running
            cost = 1 if polling else budget.requests_per_submit
            reservation = await self.budgets.reserve(
                budget, record.job.id, credential=bound, requests=cost
            )
            if reservation is None:
                self.metrics.rate_limited.labels("upstream").inc()
                retry_s = SLOTS_FULL_RETRY_S * random.uniform(1, 2)
                return await self._save_due(stored, lease, retry_s)
            wait_s = reservation.wait_s
            slot = UpstreamSlot(credential=reservation.credential)
            if wait_s > INLINE_WAIT_S:
                slot.ready_at_ms = now_ms() + int(wait_s * 1000)
                record.upstream = slot
                return await self._save_due(stored, lease, wait_s - EARLY_WAKE_S)
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        record.upstream = UpstreamSlot(credential=slot.credential)
        return slot.credential

    async def release_budget(self, stored: Stored) -> None:
        """Give back the job's concurrent-job slot upstream (it ended, or was canceled)."""
        record = stored.record
        if record.upstream is None:
            return
        adapter = self.providers[record.plan[0]]
        budget = self._budget(adapter, stored)
        if budget is not None:
            await self.budgets.release(budget, record.job.id, record.upstream.credential)
        record.upstream = None

    # -- the upstream call --------------------------------------------------------------

    async def _call_upstream(
        self, stored: Stored, lease: str, credential: int, persisted: UpstreamSlot | None
    ) -> tuple[Stored, StepResult]:
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
            stored = await self.store.save(stored, schedule=Schedule.keep, lease=lease)
        elif attempt.status is AttemptStatus.submitting and record.upstream != persisted:
            # The first attempt (created with the job) or a submit cut short: the credential
            # it goes out on is on record before the upstream hears of it.
            stored = await self.store.save(stored, schedule=Schedule.keep, lease=lease)
        adapter = self.providers[provider]
        callback_url = None
        if self.callback_url is not None and attempt.provider_job_id is None:  # submits only
            callback_url = self.callback_url(provider, job.id)
        call = Call(
            job.id,
            job.operation,
            PARAMS[job.operation](**record.params),
            self.media,
            attempt=len(job.attempts) - 1,
            credential=credential,
            callback_url=callback_url,
        )
        endpoint = "poll" if attempt.provider_job_id else "submit"
        if endpoint == "submit":
            allowed, state = await self.circuits.allow(provider, job.id)
            self.metrics.circuit(provider, state)
            if not allowed:
                return stored, Failed(
                    ErrorCode.provider_unavailable,
                    f"{provider} is failing; its circuit is {state.value.replace('_', '-')}",
                    retryable=True,
                )
        started = time.perf_counter()
        upstream_trouble = False
        try:
            if attempt.provider_job_id is not None:
                result: StepResult = await adapter.poll(call, attempt.provider_job_id)
            else:
                result = await adapter.submit(call)
        except UpstreamError as exc:
            result = Failed(exc.code, exc.detail, retryable=True)
            upstream_trouble = True
        except GatewayError as exc:  # an input that can no longer be read
            result = Failed(exc.code, exc.detail, retryable=False)
        self.metrics.upstream_request(provider, endpoint, result, time.perf_counter() - started)
        if isinstance(result, Failed) and result.code in UPSTREAM_TROUBLE:
            upstream_trouble = True
        state = await self.circuits.record(provider, job.id, ok=not upstream_trouble)
        self.metrics.circuit(provider, state)
        return stored, result

    async def _apply(self, stored: Stored, lease: str, result: StepResult) -> Stored:
        record = stored.record
        job = record.job
        attempt = job.attempts[-1]
        if isinstance(result, Submitted):
            attempt.provider_job_id = result.provider_job_id
            attempt.status = AttemptStatus.running
            return await self._save_due(stored, lease, result.poll_after_s)
        if isinstance(result, Progress):
            job.progress = result.fraction
            return await self._save_due(stored, lease, result.poll_after_s)
        attempt.completed_at = utcnow()
        await self.release_budget(stored)
        if isinstance(result, Succeeded):
            attempt.status = AttemptStatus.succeeded
            job.output = await self._store_output(record.tenant_id, job.id, result)
            job.status = JobStatus.succeeded
            job.progress = 1.0
            job.credits.charged = job.credits.reserved
            return await self._finish(stored, lease)
        attempt.status = AttemptStatus.failed
        attempt.error = JobError(
            code=result.code,
            message=result.message,
            provider_code=result.provider_code,
            retryable=result.retryable,
        )
        return await self._after_failure(stored, lease, result)

    async def _after_failure(self, stored: Stored, lease: str, failure: Failed) -> Stored:
        record = stored.record
        job = record.job
        if failure.retryable and len(record.plan) > 1:
            previous, following = record.plan[0], record.plan[1]
            price = await self.accounting.price(job.operation, following)
            if price != job.credits.reserved:
                short = await self.accounting.move_hold(record.tenant_id, job.id, price)
                if short is not None:
                    job.status = JobStatus.failed
                    job.error = JobError(
                        code=ErrorCode.insufficient_credits,
                        message=f"falling back to {following} needs {price} credits; "
                        f"{short.available} are available",
                    )
                    return await self._finish(stored, lease)
                job.credits.reserved = price
            record.plan.pop(0)
            self.metrics.fallback(job.operation.value, previous, following)
            return await self._save_due(stored, lease, 0)
        tries = sum(1 for a in job.attempts if a.provider == record.plan[0])
        if failure.retryable and tries < MAX_TRIES_PER_PROVIDER:
            delay = failure.retry_after_s or _backoff(tries)
            return await self._save_due(stored, lease, delay)
        job.status = JobStatus.failed
        job.error = job.attempts[-1].error
        return await self._finish(stored, lease)

    async def _finish(self, stored: Stored, lease: str) -> Stored:
        """Save the job terminal; its credits are charged (succeeded) or released with it."""
        record = stored.record
        job = record.job
        job.completed_at = utcnow()
        settle = Settle.charge if job.status is JobStatus.succeeded else Settle.release
        saved = await self.store.save(stored, schedule=Schedule.release, lease=lease, settle=settle)
        self.metrics.job_finished(job)
        return saved

    async def _save_due(self, stored: Stored, lease: str, after_s: float) -> Stored:
        due = now_ms() + int(after_s * 1000)
        return await self.store.save(stored, schedule=Schedule.due, due_ms=due, lease=lease)

    async def _store_output(self, tenant: str, job_id: str, result: Succeeded) -> JobOutput:
        artifacts = [await self._store_file(tenant, job_id, f) for f in result.files]
        return JobOutput(artifacts=artifacts, data=result.data)

    async def _store_file(self, tenant: str, job_id: str, output: OutputFile) -> Artifact:
        artifact_id = new_artifact_id()
        width, height = _image_size(output)
        meta = BlobMeta(
            id=artifact_id,
            tenant=tenant,
            content_type=output.content_type,
            size=len(output.content),
            width=width,
            height=height,
        )
        await asyncio.gather(
            self.blobs.put(artifact_id, output.content), self.files.add_artifact(meta)
        )
        return Artifact(
            id=artifact_id,
            url="",  # signed on every read, since signatures expire
            content_type=output.content_type,
            bytes=len(output.content),
            width=width,
            height=height,
            duration_s=duration_s(output.content, output.content_type),
        )

    @asynccontextmanager
    async def _renewing(self, job_id: str, lease: str) -> AsyncIterator[None]:
        """Keep the lease alive while a slow upstream call runs."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease_s / 3)
                if not await self.store.renew(job_id, lease, self.lease_s):
                    return

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()


@dataclass(frozen=True)
class Deadlines:
    """How long a job may take from creation to a terminal status, per operation."""

    default_s: float = 1800.0
    per_operation: Mapping[str, float] = field(default_factory=dict)

    def of(self, job: Job) -> float:
        return self.per_operation.get(job.operation.value, self.default_s)

    def passed(self, job: Job) -> bool:
        return (utcnow() - job.created_at).total_seconds() > self.of(job)


def _backoff(tries: int) -> float:
    """Full-jitter exponential backoff."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**tries))


def _image_size(output: OutputFile) -> tuple[int | None, int | None]:
    if not output.content_type.startswith("image/"):
        return None, None
    try:
        with Image.open(io.BytesIO(output.content)) as img:
            return img.width, img.height
    except (UnidentifiedImageError, OSError):
        return None, None
