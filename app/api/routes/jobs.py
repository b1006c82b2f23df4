"""Reading, listing, canceling and following jobs."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from app.api.deps import (
    IdempotencyDep,
    IdempotencyKeyDep,
    JobsDep,
    SettingsDep,
    SlotsDep,
    TenantDep,
    WebhooksDep,
)
from app.api.idempotency import idempotent
from app.api.operation_ids import operation_id
from app.api.problems import PROBLEM_RESPONSES
from app.domain.errors import ErrorCode, GatewayError
from app.domain.models import Job, JobStatus
from app.domain.operations import Operation
from app.jobs.service import JobService
from app.store.idempotency import Bound
from app.store.rate_limits import ConcurrencySlots
from app.store.webhooks import DeliveryAttempt

router = APIRouter(
    generate_unique_id_function=operation_id,
    prefix="/v1/jobs",
    tags=["jobs"],
    responses=PROBLEM_RESPONSES,
)

SSE_KEEPALIVE_S = 15.0
STREAM_SLOT_TTL_S = 2 * SSE_KEEPALIVE_S + 10
"""An event stream's slot lapses this long after its last renewal (every keep-alive)."""


class JobList(BaseModel):
    data: list[Job]
    next_cursor: str | None


@router.get("/{job_id}", name="get_job", response_model=Job)
async def get_job(job_id: str, tenant: TenantDep, jobs: JobsDep) -> Response:
    job = await jobs.get(tenant, job_id)
    return Response(job.model_dump_json(), media_type="application/json")


@router.get("", name="list_jobs")
async def list_jobs(
    tenant: TenantDep,
    jobs: JobsDep,
    status: JobStatus | None = None,
    operation: Operation | None = None,
    provider: str | None = None,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^job_[0-9a-f]{28,32}$", description="`next_cursor` of the previous page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobList:
    page = await jobs.list(
        tenant, limit=limit, cursor=cursor, status=status, operation=operation, provider=provider
    )
    return JobList(data=page.jobs, next_cursor=page.next_cursor)


@router.post("/{job_id}/cancel", name="cancel_job", response_model=Job)
async def cancel_job(
    job_id: str,
    request: Request,
    tenant: TenantDep,
    jobs: JobsDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> Response:
    """Cancel an unfinished job; its credits are released. Canceling twice is harmless."""

    async def cancel(_: Bound | None) -> Response:
        job = await jobs.cancel(tenant, job_id)
        return Response(job.model_dump_json(), media_type="application/json")

    return await idempotent(request, idempotency_key, idempotency, tenant, b"", cancel)


class DeliveryList(BaseModel):
    data: list[DeliveryAttempt]
    next_cursor: str | None = None


@router.get("/{job_id}/deliveries", name="list_job_deliveries")
async def list_job_deliveries(
    job_id: str, tenant: TenantDep, jobs: JobsDep, webhooks: WebhooksDep
) -> DeliveryList:
    """Every attempt to deliver the job's webhook to its `callback_url`, oldest first."""
    await jobs.load(tenant, job_id)  # 404 for unknown and other tenants' jobs
    return DeliveryList(data=await webhooks.attempts(job_id))


@router.get(
    "/{job_id}/events",
    name="stream_job_events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Job snapshots"}},
)
async def stream_job_events(
    job_id: str, tenant: TenantDep, jobs: JobsDep, slots: SlotsDep, settings: SettingsDep
) -> StreamingResponse:
    """Server-Sent Events: the job now, then on every status change until it is terminal.

    A tenant has at most `tenant_max_event_streams` streams open at once (every process
    together); one more is refused with 429 `too_many_streams`."""
    await jobs.load(tenant, job_id)  # 404 before the stream starts
    stream = StreamSlot(slots, settings.tenant_max_event_streams, tenant.id)
    await stream.take()
    return StreamingResponse(
        _events(jobs, job_id, stream),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class StreamSlot:
    """One of the tenant's event-stream slots (Redis): taken before the stream starts,
    renewed while it runs, given back when it ends; a crashed process's slots lapse."""

    def __init__(self, slots: ConcurrencySlots, limit: int, tenant_id: str) -> None:
        self.slots = slots
        self.limit = limit
        self.key = f"event-streams:{{{tenant_id}}}"
        self.holder = secrets.token_hex(8)

    async def take(self) -> None:
        if not await self.slots.acquire(self.key, self.holder, self.limit, STREAM_SLOT_TTL_S):
            raise GatewayError(
                f"this account already has {self.limit} event streams open; close one first",
                ErrorCode.too_many_streams,
                429,
                headers={"Retry-After": str(int(SSE_KEEPALIVE_S))},
            )

    async def renew(self) -> None:
        await self.slots.acquire(self.key, self.holder, self.limit, STREAM_SLOT_TTL_S)

    async def give_back(self) -> None:
        with anyio.CancelScope(shield=True):  # the stream's own scope may be canceled
            await self.slots.release(self.key, self.holder)


async def _events(jobs: JobService, job_id: str, stream: StreamSlot) -> AsyncIterator[str]:
    try:
        async for event in _job_events(jobs, job_id, stream):
            yield event
    finally:
        await stream.give_back()


async def _job_events(jobs: JobService, job_id: str, stream: StreamSlot) -> AsyncIterator[str]:
    async with jobs.events.subscribe(job_id) as changes:
        last: tuple[str, float | None] | None = None
        while True:
            await stream.renew()
            job = await jobs.get_any(job_id)
            state = (job.status.value, job.progress)
            if state != last:
                last = state
                yield f"event: {job.status.value}\nid: {job.id}\ndata: {job.model_dump_json()}\n\n"
            if job.status.terminal:
                return
            try:
                await asyncio.wait_for(changes.get(), timeout=SSE_KEEPALIVE_S)
            except TimeoutError:
                yield f": keep-alive {json.dumps(job.status.value)}\n\n"
