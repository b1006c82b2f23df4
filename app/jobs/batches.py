"""Batches: creating and reading them, and the driver that starts their items as jobs.

The driver runs in every worker. It claims due batches under a lease (a driver that dies
leaves its batches due again) and, for each, counts the jobs that ended, cancels the running
jobs of a canceled batch, starts items while fewer than ``window`` of its jobs run, and
completes the batch once every item has ended. An item becomes a job through
:meth:`JobService.submit`, like a request to the operation's route: the same checks, the same
credit reservation, the tenant's job-slot limit and the upstream budgets. The item's job id is
chosen and recorded before the submission (``starting``), so a driver killed mid-submission
leaves the next one to find the job or create it with that id: never two jobs for one item.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime

from pydantic import ValidationError
from redis.exceptions import RedisError

from app.domain.batches import (
    Batch,
    BatchItem,
    BatchItemPage,
    BatchLinks,
    BatchStatus,
    ItemError,
    new_batch_id,
)
from app.domain.errors import ErrorCode, GatewayError, InvalidRequest, NotFound
from app.domain.models import JobStatus, new_job_id
from app.domain.operations import PARAMS, Operation, Params
from app.jobs.envelope import Envelope, JobOptions
from app.jobs.service import JobService
from app.store.batches import BatchStore, StoredBatch, TakenItem
from app.store.idempotency import Bound
from app.store.tenants import Tenant, TenantStore

log = logging.getLogger(__name__)

ENVELOPE_FIELDS = frozenset(Envelope.model_fields)
PASS_EVERY_MS = 250
"""A running batch's next pass: new items start as its jobs end."""
LEASE_MS = 30_000
RENEW_EVERY = 20
"""Items started between renewals of the driver's lease on a batch."""
IDLE_SLEEP_S = 0.2
IDLE_SLEEP_MAX_S = 0.8
"""Pauses between claims that find no batch due double from ``IDLE_SLEEP_S`` up to this."""


def parse_item(operation: Operation, body: Mapping[str, object]) -> tuple[Params, Envelope]:
    """An item's parameters and envelope, validated as the operation's route validates them.

    Raises :class:`pydantic.ValidationError` with locations inside the item.
    """
    params = PARAMS[operation].model_validate(
        {k: v for k, v in body.items() if k not in ENVELOPE_FIELDS}
    )
    envelope = Envelope.model_validate({k: v for k, v in body.items() if k in ENVELOPE_FIELDS})
    return params, envelope


def _ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def render(batch: StoredBatch) -> Batch:
    ended = batch.counts.succeeded + batch.counts.failed + batch.counts.canceled
    base = f"/v1/batches/{batch.id}"
    created = _ms(batch.created_ms)
    assert created is not None
    return Batch(
        id=batch.id,
        operation=batch.operation,
        status=batch.status,
        total=batch.total,
        counts=batch.counts,
        progress=round(ended / batch.total, 4) if batch.total else 1.0,
        metadata=batch.metadata,
        created_at=created,
        completed_at=_ms(batch.completed_ms),
        links=BatchLinks(self=base, jobs=f"{base}/jobs", cancel=f"{base}/cancel"),
    )


class BatchService:
    def __init__(self, store: BatchStore, jobs: JobService) -> None:
        self.store = store
        self.jobs = jobs

    async def create(
        self,
        tenant: Tenant,
        operation: Operation,
        items: list[dict[str, object]],
        *,
        callback_url: str | None,
        metadata: dict[str, object],
        bound: Bound | None = None,
    ) -> Batch:
        """Store a batch whose items were validated (:func:`parse_item`); starts at once.

        Under the id ``bound`` to its ``Idempotency-Key`` when it has one: a batch an earlier
        attempt of the same request made under it is the answer, as it stands (looked for
        first when ``bound.may_exist``, else found by the creation), never a second batch."""
        if bound is not None and bound.may_exist:
            made = await self.store.get(bound.id)
            if made is not None:
                return render(_owned(made, tenant, bound.id))
        if callback_url is not None:
            await self.jobs.url_policy.check(callback_url, "/callback_url")
        batch_id = bound.id if bound is not None else new_batch_id()
        bodies = [json.dumps(item, separators=(",", ":")) for item in items]
        # made now, or (refused) by an earlier attempt: either way it is the answer
        await self.store.create(
            batch_id,
            tenant.id,
            operation,
            bodies,
            metadata=metadata,
            callback_url=callback_url,
        )
        return await self.get(tenant, batch_id)

    async def load(self, tenant: Tenant, batch_id: str) -> StoredBatch:
        batch = await self.store.get(batch_id) if batch_id.startswith("batch_") else None
        return _owned(batch, tenant, batch_id)

    async def get(self, tenant: Tenant, batch_id: str) -> Batch:
        return render(await self.load(tenant, batch_id))

    async def completion(self, batch_id: str) -> tuple[str, str, Batch] | None:
        """For its webhook: the tenant, callback URL and batch of a completed batch."""
        batch = await self.store.get(batch_id)
        if batch is None or batch.callback_url is None:
            return None
        if batch.status != BatchStatus.completed:
            return None
        return batch.tenant_id, batch.callback_url, render(batch)

    async def cancel(self, tenant: Tenant, batch_id: str) -> Batch:
        """Items not started end canceled now; running jobs are canceled by the driver."""
        await self.load(tenant, batch_id)
        await self.store.cancel(batch_id)
        return await self.get(tenant, batch_id)

    async def items(
        self, tenant: Tenant, batch_id: str, *, cursor: str | None, limit: int
    ) -> BatchItemPage:
        """Items in order from ``cursor`` (an item index), each with its job's status."""
        batch = await self.load(tenant, batch_id)
        start = _cursor(cursor)
        stop = min(start + limit, batch.total)
        results = await self.store.results(batch_id, start, stop)
        job_ids = [str(r["job_id"]) for r in results if "job_id" in r]
        statuses = dict(zip(job_ids, await self.store.job_statuses(job_ids), strict=True))
        page = []
        for index, result in zip(range(start, stop), results, strict=True):
            if "job_id" in result:
                job_id = str(result["job_id"])
                page.append(BatchItem(index=index, status=statuses[job_id], job_id=job_id))
            elif result:
                page.append(BatchItem.model_validate({"index": index, **result}))
            elif batch.stopped is not None and batch.stopped_at is not None:
                if index >= batch.stopped_at:
                    page.append(BatchItem.model_validate({"index": index, **batch.stopped}))
                else:
                    page.append(BatchItem(index=index, status=None))
            else:
                page.append(BatchItem(index=index, status=None))
        return BatchItemPage(data=page, next_cursor=str(stop) if stop < batch.total else None)


def _owned(batch: StoredBatch | None, tenant: Tenant, batch_id: str) -> StoredBatch:
    """The batch if it is the tenant's; ``NotFound`` for unknown and other tenants' batches."""
    if batch is None or batch.tenant_id != tenant.id:
        raise NotFound("batch", batch_id)
    return batch


def _cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or len(cursor) > 6:
        raise InvalidRequest("invalid cursor", pointer="/cursor", status=400)
    return int(cursor)


class BatchDriver:
    """Advances due batches until :meth:`stop`; one runs in every worker."""

    def __init__(
        self, store: BatchStore, jobs: JobService, tenants: TenantStore, *, window: int
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.tenants = tenants
        self.window = window
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        idle = IDLE_SLEEP_S
        while not self._stopping.is_set():
            try:
                due = await self.store.claim(8, LEASE_MS)
                for batch_id in due:
                    await self.advance(batch_id)
                if due:
                    idle = IDLE_SLEEP_S
                    continue
            except (RedisError, OSError) as exc:
                log.warning("batches: store unavailable (%s)", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), idle)
            idle = min(idle * 2, IDLE_SLEEP_MAX_S)

    async def advance(self, batch_id: str) -> None:
        """One pass over one batch."""
        batch = await self.store.get(batch_id)
        if batch is None or batch.status == BatchStatus.completed:
            return
        open_jobs = await self.store.open_jobs(batch_id)
        statuses = await self.store.job_statuses(open_jobs)
        still_open = []
        for job_id, status in zip(open_jobs, statuses, strict=True):
            if status is None:  # expired unseen: it ended long ago, outcome unknown
                await self.store.job_ended(batch_id, job_id, JobStatus.failed)
            elif status.terminal:
                await self.store.job_ended(batch_id, job_id, status)
            else:
                still_open.append(job_id)
        tenant = await self.tenants.get(batch.tenant_id)
        if batch.status == BatchStatus.canceling:
            await self._cancel_jobs(tenant, still_open)
        elif tenant is not None:
            await self._start_items(batch_id, batch.operation, tenant, len(still_open))
        if not await self.store.complete(batch_id):
            await self.store.again_in(batch_id, PASS_EVERY_MS)

    async def _cancel_jobs(self, tenant: Tenant | None, job_ids: list[str]) -> None:
        if tenant is None:
            return
        for job_id in job_ids:
            with suppress(GatewayError):
                await self.jobs.cancel(tenant, job_id)

    async def _start_items(
        self, batch_id: str, operation: Operation, tenant: Tenant, running: int
    ) -> None:
        started = 0
        while running < self.window:
            item = await self.store.take(batch_id, new_job_id())
            if item is None:
                return
            outcome = await self._start(batch_id, operation, tenant, item)
            started += 1
            if started % RENEW_EVERY == 0:  # a long pass keeps its lease
                await self.store.again_in(batch_id, LEASE_MS)
            if outcome == "later":
                return
            if outcome == "job":
                running += 1

    async def _start(
        self, batch_id: str, operation: Operation, tenant: Tenant, item: TakenItem
    ) -> str:
        if item.resumed and await self.store.job_statuses([item.job_id]) != [None]:
            await self.store.started(batch_id, item)  # created before the last driver died
            return "job"
        try:
            params, envelope = parse_item(operation, json.loads(item.body))
            await self.jobs.submit(
                tenant, operation, params, envelope, options=JobOptions(job_id=item.job_id)
            )
        except ValidationError as exc:  # checked at creation; kept for items stored before
            error = {"code": ErrorCode.invalid_parameter.value, "message": str(exc)[:500]}
            await self.store.item_failed(batch_id, item, error, stop=False)
            return "failed"
        except GatewayError as exc:
            if exc.code == ErrorCode.rate_limited:  # the tenant's job slots are all taken
                await self.store.untake(batch_id, item)
                return "later"
            error = ItemError(code=exc.code, message=exc.detail).model_dump(mode="json")
            stop = exc.code == ErrorCode.insufficient_credits
            await self.store.item_failed(batch_id, item, error, stop=stop)
            return "failed"
        await self.store.started(batch_id, item)
        return "job"
