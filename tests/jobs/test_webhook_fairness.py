"""Webhook deliveries on a real Redis to real loopback receivers: a tenant whose receiver hangs
holds only its own places; another tenant's webhooks are all delivered meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from app.domain.models import Job, JobLinks, JobRecord, JobStatus, new_job_id, utcnow
from app.domain.operations import Operation
from app.safe_urls import UrlPolicy, guarded_client
from app.store import keys
from app.store.jobs import JobStore, Stored, now_ms
from app.store.scripts import Scripts
from app.store.webhooks import WebhookStore
from app.webhooks import WebhookSender
from tests.utils.deadlines import JOB_S
from tests.utils.raw_server import raw_server

TIMEOUT_S = JOB_S


@dataclass
class Receivers:
    url: str = ""
    hanging: int = 0
    delivered: list[str] = field(default_factory=list)


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    """One server: ``/hang`` never answers, anything else answers 204 (the job id noted)."""
    state = Receivers()
    hold = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ")[1].decode()
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        if path.startswith("/hang"):
            state.hanging += 1
            await hold.wait()
            return
        state.delivered.append(path.rsplit("/", 1)[1])
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()

    async with raw_server(handle) as url:
        state.url = url
        try:
            yield state
        finally:
            hold.set()


async def finished_job(store: JobStore, tenant: str, callback_url: str) -> str:
    """A job of ``tenant`` saved succeeded with a webhook due, as the terminal save leaves it."""
    job_id = new_job_id()
    job = Job(
        id=job_id,
        operation=Operation.image_remove_background,
        status=JobStatus.succeeded,
        input={},
        created_at=utcnow(),
        links=JobLinks(self=f"/v1/jobs/{job_id}", cancel="c", events="e"),
    )
    record = JobRecord(
        job=job, tenant_id=tenant, params={}, plan=["imagepig"], callback_url=callback_url
    )
    created = await store.create(record, price=0, slot_limit=1000)
    assert isinstance(created, Stored)
    await store.redis.zadd(keys.WEBHOOKS_DUE, {job_id: now_ms()})
    return job_id


async def test_a_hanging_receiver_holds_only_its_tenants_places(
    redis_client: Redis, receivers: Receivers
) -> None:
    """Four places in all, two per receiver of a tenant: six deliveries of a tenant whose
    receiver hangs are due first, yet all six of another tenant's arrive while the first
    tenant's still hang, and no attempt is counted for the ones that waited."""
    scripts = Scripts.register(redis_client)
    store = JobStore(redis_client, scripts, retention_s=3600)
    webhooks = WebhookStore(redis_client, scripts, retention_s=3600)
    slow = [await finished_job(store, "slow", f"{receivers.url}/hang/{i}") for i in range(6)]
    quick = [await finished_job(store, "quick", f"{receivers.url}/ok/{i}") for i in range(6)]
    for job_id in quick:  # the slow tenant's deliveries are the oldest
        await redis_client.zadd(keys.WEBHOOKS_DUE, {job_id: now_ms() + 50})

    async with guarded_client(UrlPolicy(["127.0.0.1/32"])) as client:
        sender = WebhookSender(
            store,
            webhooks,
            client,
            lambda record: record.job,
            concurrency=4,
            per_endpoint=2,
            per_tenant=3,
            timeout_s=600,
        )
        running = asyncio.create_task(sender.run())
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TIMEOUT_S
            while len(receivers.delivered) < len(quick):
                assert loop.time() < deadline, f"delivered only {receivers.delivered}"
                await asyncio.sleep(0.05)
            assert 0 < receivers.hanging <= 2
            assert sorted(receivers.delivered) == [str(i) for i in range(6)]
            for job_id in quick:
                [attempt] = await webhooks.attempts(job_id)
                assert attempt.status_code == 204
            assert [await webhooks.attempts_made(job_id) for job_id in slow] == [0] * 6
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
