"""Reading jobs as a client sees them: one, a page of a tenant's, or one waited for until it ends.

Every job a client reads goes through the one renderer (``JobRenderer``); a job read again
unchanged as JSON is not parsed and serialized again (``RenderedJobs``). Another tenant's job
is read as no job at all (``NotFound``). ``JobService`` extends ``JobReads``: the routes
read jobs through it.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass

from app.domain.errors import NotFound
from app.domain.models import Job, JobStatus
from app.domain.operations import Operation
from app.jobs.events import EventHub
from app.jobs.render import JobRenderer, RenderedJobs
from app.store.jobs import JobStore, Stored
from app.store.rate_limits import RateCheck
from app.store.tenants import Tenant

RECHECK_S = 5.0
"""A waiting request reads its job's status at least this often, besides each change it is
told of: a change the event connection missed (the store away a moment) is late by this at
most."""


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


class JobReads:
    def __init__(self, store: JobStore, events: EventHub, renderer: JobRenderer) -> None:
        self.store = store
        self.events = events
        self.renderer = renderer
        self.rendered = RenderedJobs(renderer)

    def render(self, job: Job) -> Job:
        """The job as a client sees it (``JobRenderer``: artifact URLs signed now)."""
        return self.renderer.job(job)

    async def get_any(self, job_id: str) -> Job:
        stored = await self.store.get(job_id)
        if stored is None:
            raise NotFound("job", job_id)
        return self.render(stored.record.job)

    async def load(self, tenant: Tenant, job_id: str) -> Stored:
        stored = await self.store.get(job_id) if job_id.startswith("job_") else None
        return owned(stored, tenant, job_id)

    async def get(self, tenant: Tenant, job_id: str) -> Job:
        return self.render((await self.load(tenant, job_id)).record.job)

    async def get_json(self, tenant: Tenant, job_id: str, rate: RateCheck) -> str:
        """:meth:`get` as the JSON it serializes to, read by a request counted against
        ``rate`` in the same script (``RateRefused`` when over it); a job read again unchanged
        is not parsed and serialized again (``RenderedJobs``)."""
        if not job_id.startswith("job_"):
            await self.store.read_counted(None, rate)  # counted alike; no such job
            raise NotFound("job", job_id)
        body = await self.store.read_counted(job_id, rate)
        text = None if body is None else self.rendered.json(job_id, body, tenant.id)
        if text is None:
            raise NotFound("job", job_id)
        return text

    async def wait(self, job_id: str, timeout_s: float) -> Job:
        """The job once terminal, or as it is when ``timeout_s`` runs out."""
        deadline = time.monotonic() + max(timeout_s, 0)
        async with self.events.subscribe(job_id) as changes:
            while True:
                status = await self.store.status_of(job_id)
                remaining = deadline - time.monotonic()
                if status is None or status.terminal or remaining <= 0:
                    return await self.get_any(job_id)
                with suppress(TimeoutError):  # read again now and then, whatever the events
                    await asyncio.wait_for(changes.get(), timeout=min(remaining, RECHECK_S))

    async def list(
        self,
        tenant: Tenant,
        *,
        limit: int,
        cursor: str | None,
        status: JobStatus | None = None,
        operation: Operation | None = None,
        provider: str | None = None,
    ) -> JobPage:
        found: list[Job] = []
        before = cursor
        while len(found) < limit:
            ids = await self.store.list_ids(tenant.id, before=before, limit=max(limit, 50))
            if not ids:
                return JobPage(found, None)
            rows = await self.store.get_many(ids)
            expired = [i for i, r in zip(ids, rows, strict=True) if r is None]
            await self.store.prune_index(tenant.id, expired)
            for job_id, row in zip(ids, rows, strict=True):
                before = job_id
                if row is None:
                    continue
                job = row.record.job
                if (
                    (status is None or job.status == status)
                    and (operation is None or job.operation == operation)
                    and (provider is None or job.provider == provider)
                ):
                    found.append(self.render(job))
                    if len(found) == limit:
                        return JobPage(found, job_id)
        return JobPage(found, before)


def owned(stored: Stored | None, tenant: Tenant, job_id: str) -> Stored:
    """The job if it is the tenant's; ``NotFound`` for unknown and other tenants' jobs."""
    if stored is None or stored.record.tenant_id != tenant.id:
        raise NotFound("job", job_id)
    return stored
