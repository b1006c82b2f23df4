"""Creating and canceling jobs — what the API routes call; reading them is ``app.jobs.reads``.

Submitting validates everything first (provider plan, parameters the provider can honour and
those it requires, media), then stores inputs, then creates the job. Nothing is stored when
validation fails, and the inline inputs stored for a creation that makes no job (refused for
credits, job slots or the rate, or finding the job an earlier attempt of the same request
made) are deleted, their bytes given back to the tenant's storage quota. Canceling is the
lifecycle's transition (``Lifecycle.cancel``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from app.blobs import BlobStore
from app.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
)
from app.domain.json_values import (
    check_metadata,
    check_storable,
)
from app.domain.models import (
    Attempt,
    Job,
    JobLinks,
    JobRecord,
    JobStatus,
    Measure,
    new_job_id,
    utcnow,
)
from app.domain.operations import DATA_RESULTS, Operation, Params
from app.jobs.accounting import Accounting, InsufficientCredits, TooManyJobs, note_quote
from app.jobs.doorbell import Doorbell
from app.jobs.envelope import (
    Envelope,
    JobOptions,
    webhook_events,
    without_inline_media,
)
from app.jobs.events import EventHub
from app.jobs.input_files import InputFiles
from app.jobs.intake import CheckedMedia, check_inputs, seen_inputs
from app.jobs.media_rules import av_seen, field_byte_limits, fit_plan
from app.jobs.plan import plan_providers
from app.jobs.prices import Quote, flat_quote
from app.jobs.prices.measure import measure_request
from app.jobs.reads import JobReads, owned
from app.jobs.render import JobRenderer
from app.jobs.result_cache import CacheDecision, ResultCache
from app.jobs.runner import STEP_GRACE_S, JobRunner
from app.jobs.storage import Storage
from app.jobs.submissions import answered, under_way
from app.providers.registry import ProviderRegistry
from app.safe_urls import UrlPolicy
from app.store.credits import Shortfall
from app.store.files import BlobMeta, FileIndex
from app.store.idempotency import Bound
from app.store.jobs import JobExists, JobSlotsFull, JobStore, SaveRefused, Stored
from app.store.rate_limits import RateRefused
from app.store.tenants import Tenant

log = logging.getLogger(__name__)


class JobService(JobReads):
    """Submitting and canceling jobs; reading them as ``JobReads`` does."""

    def __init__(
        self,
        store: JobStore,
        providers: ProviderRegistry,
        runner: JobRunner,
        events: EventHub,
        files: FileIndex,
        blobs: BlobStore,
        renderer: JobRenderer,
        accounting: Accounting,
        *,
        url_policy: UrlPolicy,
        max_media_bytes: int,
        lease_s: float,
        charge_accepted_work: bool = True,
        storage: Storage,
        cache: ResultCache | None = None,
        doorbell: Doorbell | None = None,
    ) -> None:
        super().__init__(store, events, renderer)
        self.doorbell = doorbell
        """Rung when a job is queued for the workers, for the one in this process."""
        self.storage = storage
        self.inputs = InputFiles(storage, runner.media)
        self.cache = cache
        self.providers = providers
        self.runner = runner
        self.files = files
        self.blobs = blobs
        self.accounting = accounting
        self.charge_accepted_work = charge_accepted_work
        """The default policy: charge a job canceled or past its deadline once the upstream
        accepted its task (a tenant's own setting wins)."""
        self.url_policy = url_policy
        self.max_media_bytes = max_media_bytes
        self._adapters = [providers[name] for name in providers]
        self._field_limits = field_byte_limits(self._adapters, max_media_bytes)
        self.lease_s = lease_s
        self._inline: set[asyncio.Task[Stored]] = set()

    # -- submit -------------------------------------------------------------------------

    async def submit(
        self,
        tenant: Tenant,
        operation: Operation,
        params: Params,
        envelope: Envelope,
        *,
        wait_s: float = 0,
        options: JobOptions | None = None,
    ) -> Job:
        """Create a job, or answer it at once from the result cache (see ``JobOptions``).

        Errors are raised only up to the job's creation: once the job exists, it is the
        answer, whatever fails after (``_as_it_stands``). A job already made under
        ``options.job_id`` (an earlier attempt of the same request) is the answer too, as it
        stands: looked for first when ``options.may_exist``, else found by the creation."""
        options = options or JobOptions()
        if options.job_id is not None and options.may_exist:
            made = await self._made(tenant, options.job_id)
            if made is not None:
                return made
        check_metadata(envelope.metadata)
        check_storable(without_inline_media(params), "")
        if envelope.callback_url is not None:
            await self.url_policy.check(envelope.callback_url, "/callback_url")
        elif envelope.webhook_events is not None:
            raise InvalidRequest(
                "webhook_events needs a callback_url to send them to", pointer="/webhook_events"
            )
        plan = plan_providers(
            self.providers.bindings(operation),
            operation,
            params,
            envelope.provider,
            envelope.fallback,
        )
        # Priced by the unit (app.jobs.prices): the most this request can cost is reserved.
        # When the rule does not go by the media, the quote is known before the media is read:
        # ask Redis about the balance while the media is decoded and checked on the CPU.
        asked = measure_request(params, {})
        quote = await self.accounting.quote(operation, plan[0], params, asked)
        media_priced = await self.accounting.media_priced(operation, plan[0])
        # Without inline media nothing is stored before the job is created, and creating it
        # checks the balance in the same script: no separate balance query then.
        inline = any(ref.data is not None for ref in params.media().values())
        affordable = None
        if inline and not media_priced:
            check = self.accounting.check_affordable(tenant, quote.amount)
            affordable = asyncio.ensure_future(check)
            await asyncio.sleep(0)  # let the balance query go out first
        try:
            checked = await check_inputs(
                tenant.id,
                params,
                self.files,
                self.url_policy,
                lambda name: self._byte_limit(operation, name),
            )
            seen = await seen_inputs(params, checked, self.files, self.blobs.get)
            fitted = fit_plan(
                {name: self.providers[name] for name in plan},
                plan,
                envelope.provider is not None,
                operation,
                av_seen(seen),
                self.max_media_bytes,
            )
        except BaseException:
            if affordable is not None:
                affordable.cancel()
                await asyncio.wait([affordable])
            raise
        measure = measure_request(params, seen) if seen else asked  # no media: measured already
        if affordable is not None:
            await affordable
        if media_priced or fitted[0] != plan[0]:  # priced by the media, or by another provider
            quote = await self.accounting.quote(operation, fitted[0], params, measure)
            if inline:
                await self.accounting.check_affordable(tenant, quote.amount)
        plan = fitted
        cached = CacheDecision()
        if self.cache is not None:
            given = {name: media.content for name, media in checked.items()}
            chosen = options.chosen_providers(envelope)
            cached = await self.cache.consider(
                tenant, operation, params, chosen, given, options.cache_control
            )
            if cached.hit is not None:
                quote = flat_quote(self.cache.hit_price(tenant, cached.hit))
        return await self._create(
            tenant,
            operation,
            params,
            envelope,
            plan,
            checked,
            (quote, measure),
            wait_s if cached.hit is None else 0,
            options,
            cached,
        )

    async def _create(
        self,
        tenant: Tenant,
        operation: Operation,
        params: Params,
        envelope: Envelope,
        plan: list[str],
        checked: dict[str, CheckedMedia],
        priced: tuple[Quote, Measure],
        wait_s: float,
        options: JobOptions,
        cached: CacheDecision,
    ) -> Job:
        quote, measure = priced
        params, inline = await self.inputs.store_inline(tenant, params, checked)
        job_id = options.job_id or new_job_id()
        job = Job(
            id=job_id,
            operation=operation,
            status=JobStatus.queued,
            input=params.model_dump(mode="json", exclude_none=True),
            metadata=envelope.metadata,
            created_at=utcnow(),
            links=_links(job_id),
        )
        record = JobRecord(
            job=job,
            tenant_id=tenant.id,
            params=params.model_dump(mode="json", exclude_unset=True),
            plan=plan,
            callback_url=envelope.callback_url,
            webhook_events=webhook_events(envelope, tenant),
            cancel_at=(
                job.created_at + timedelta(seconds=options.cancel_after_s)
                if options.cancel_after_s is not None
                else None
            ),
            cache_key=cached.key,
            cache_ttl_s=cached.ttl_s,
            measure=measure,
            charge_accepted_work=(
                self.charge_accepted_work
                if tenant.charge_accepted_work is None
                else tenant.charge_accepted_work
            ),
        )
        note_quote(record, quote)
        job.cache = "miss" if cached.key is not None else None
        if wait_s > 0:
            # This process runs it now: created leased, with its first attempt recorded (the
            # write the runner would otherwise make before calling the upstream).
            job.status = JobStatus.running
            job.provider = plan[0]
            job.started_at = job.created_at
            job.attempts.append(Attempt(provider=plan[0], started_at=job.created_at))
        output = None
        if wait_s > 0 and cached.hit is None and operation not in DATA_RESULTS:
            # run now: its output's deletion is scheduled with the creation, and its terminal
            # save counts the output (app/jobs/storage.py), a round trip fewer than a
            # reservation of its own
            created_ms = int(job.created_at.timestamp() * 1000)
            output = self.storage.schedule_output(tenant.id, created_ms)
        try:
            created = await self.store.create(
                record,
                price=quote.amount,
                slot_limit=self.accounting.slot_limit(tenant),
                lease_s=self.lease_s if wait_s > 0 or cached.hit is not None else None,
                pricing=quote.pricing,
                rate=options.rate,
                output=output,
            )
        except RateRefused:
            await self.inputs.discard(tenant, inline)
            raise
        if not isinstance(created, Stored):
            # refused, or made by an earlier attempt of the request: nothing refers to the
            # inline inputs just stored (an error is no refusal: the job may exist, using them)
            await self.inputs.discard(tenant, inline)
        if isinstance(created, Shortfall):
            raise InsufficientCredits(created.required, created.available)
        if isinstance(created, JobSlotsFull):
            raise TooManyJobs(created.limit)
        if isinstance(created, JobExists):
            made = await self._made(tenant, job_id)
            if made is None:  # gone already: ended past its retention meanwhile
                raise NotFound("job", job_id)
            return made
        try:
            if cached.hit is not None:
                assert created.lease is not None
                served = await self.runner.lifecycle.serve_cached(
                    created, created.lease, cached.hit
                )
                return self.render(served.record.job)
            if wait_s <= 0:
                if self.doorbell is not None:
                    self.doorbell.ring()
                return self.render(record.job)
            return await self._run_inline(created, wait_s)
        except Exception:
            log.warning(
                "job %s: the submission failed after creating it; answered as it stands",
                job_id,
                exc_info=True,
            )
            return await self._as_it_stands(created)

    async def _as_it_stands(self, created: Stored) -> Job:
        """A job just created, for a submission that failed after creating it (the store away
        a moment in its inline step or wait, the object store away while its input is read,
        serving a cached result): the job as stored now, else as it was created.

        Once the job exists (its credits held, its lease expiring into a worker's hands if
        this process lets go of it) the submission's answer is that job, never an error: the
        client, told of its job, follows it as it does a ``Prefer: wait`` that ran out, and
        the request's ``Idempotency-Key`` replays it (an error would leave the key bound to
        the job for a retry to find, ``app/api/idempotency.py``, but tell this client
        nothing)."""
        try:
            return await self.get_any(created.record.job.id)
        except Exception:
            return self.render(created.record.job)

    async def _made(self, tenant: Tenant, job_id: str) -> Job | None:
        """The job an earlier attempt of the same request made under ``job_id``, as it stands
        (``None`` when there is none); another tenant's is ``NotFound``, as everywhere."""
        stored = await self.store.get(job_id)
        if stored is None:
            return None
        made = owned(stored, tenant, job_id).record.job
        log.info("job %s: made by an earlier attempt of its request; answered as it stands", job_id)
        return self.render(made)

    def _byte_limit(self, operation: Operation, name: str) -> int:
        """The most bytes inline input ``name`` may have: what a provider of the operation
        takes (``media_rules``), else the media limit."""
        return self._field_limits.get(operation, {}).get(name, self.max_media_bytes)

    async def store_file(
        self, tenant: Tenant, image: CheckedMedia, pointer: str, bound: Bound | None = None
    ) -> BlobMeta:
        """An upload kept as a file (``InputFiles.store_upload``), under the id ``bound`` to
        its ``Idempotency-Key`` when it has one."""
        file_id = bound.id if bound is not None else None
        return await self.inputs.store_upload(tenant, image, pointer, file_id)

    async def _run_inline(self, stored: Stored, wait_s: float) -> Job:
        """Advance a job in this request while the client waits; hand over when it must wait.

        The job is leased to this process from creation, so if the process dies the lease
        expires and a worker resumes it. The step runs as a task of its own: a client that
        stops waiting does not abandon an upstream call half-way. An error in the step or the
        wait is answered by the caller with the job as it stands (``_as_it_stands``).
        """
        deadline = time.monotonic() + wait_s
        task = asyncio.create_task(self.runner.step(stored))
        self._inline.add(task)
        task.add_done_callback(self._inline.discard)
        try:
            stored = await asyncio.wait_for(asyncio.shield(task), timeout=wait_s)
        except TimeoutError:
            return await self.get_any(stored.record.job.id)
        except SaveRefused:
            return await self.get_any(stored.record.job.id)
        if stored.record.job.status.terminal:
            return self.render(stored.record.job)
        remaining = deadline - time.monotonic()
        return await self.wait(stored.record.job.id, remaining)

    async def drain(self, grace_s: float = STEP_GRACE_S) -> None:
        """Before the process closes its clients: let the steps run for waiting clients
        (``_run_inline``) finish, for ``grace_s``, then cancel those left. A step is not tied
        to its request (a client that stops waiting leaves it running), so a request's end
        does not mean its step's; cut off mid-call by a closed client instead, it would leave
        its job ``submitting`` while the upstream may hold, and bill, the task it was sent."""
        if not self._inline:
            return
        _, pending = await asyncio.wait(set(self._inline), timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    # -- cancel -------------------------------------------------------------------------

    async def cancel(self, tenant: Tenant, job_id: str) -> Job:
        """Cancel a job that has not finished. Canceling a canceled job answers it again.

        A job whose submission is under way (a worker holds it, its attempt ``submitting``)
        is canceled once the upstream has answered it, so that the answer is the one this
        cancel settles: a task the upstream accepted is on the record, and charged as
        accepted work. It waits at most ``SUBMISSION_WAIT_S`` (``app.jobs.submissions``);
        a submission still under way then is canceled as it stands, its attempt left
        ``submitting`` and its credits held until the worker records the upstream's answer
        (``Lifecycle.cancel``)."""
        waited = False
        for _ in range(5):
            stored = await self.load(tenant, job_id)
            job = stored.record.job
            if job.status == JobStatus.canceled:
                return self.render(job)
            if job.status.terminal:
                raise Conflict(f"job {job_id} already {job.status.value}", about=job_id)
            if not waited and under_way(stored):
                waited = True
                await answered(self.store, self.events, job_id)
                continue
            try:
                saved = await self.runner.lifecycle.cancel(stored)
            except SaveRefused:
                continue  # a worker moved it meanwhile: read again and decide again
            return self.render(saved.record.job)
        raise Conflict(f"job {job_id} is changing too fast to cancel; retry", about=job_id)


def _links(job_id: str) -> JobLinks:
    base = f"/v1/jobs/{job_id}"
    return JobLinks(self=base, cancel=f"{base}/cancel", events=f"{base}/events")
