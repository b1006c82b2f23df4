"""A canceled job gives its upstream concurrent-job slot back at once, not when the hold
lapses ten minutes later (Perfect runs only three tasks per token on its documented plan)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from app.config import SANDBOX_TENANT_KEY
from app.domain.models import UpstreamTurn
from app.gateway import Gateway
from app.store import keys
from app.store.jobs import SaveRefused, Schedule, Stored, now_ms
from tests.utils.in_process import in_process_gateway
from tests.utils.media import png_b64

HOLD_MS = 600_000
SLOTS = keys.upstream_jobs("perfectcorp", "default", 0)


@pytest.fixture
async def gateway(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """An in-process sandbox gateway (``redis_client`` first: it empties the database)."""
    headers = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
    async with in_process_gateway(redis_url, tmp_path, headers=headers, sandbox=True) as built:
        yield built


async def perfect_job_holding_a_slot(
    gw: Gateway, client: httpx.AsyncClient, redis: Redis
) -> Stored:
    """A Perfect job claimed by a worker, holding credential 0's concurrent-job slot."""
    created = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64()}, "provider": "perfectcorp", "fallback": False},
    )
    assert created.status_code == 202, created.text
    (claimed,) = await gw.jobs.store.claim(1, 30)
    claimed.record.upstream = UpstreamTurn(credential=0)
    claimed = await gw.jobs.store.save(claimed, schedule=Schedule.keep, lease=claimed.lease)
    await redis.zadd(SLOTS, {claimed.record.job.id: now_ms() + HOLD_MS})
    return claimed


async def test_canceling_a_job_releases_its_upstream_slot(
    gateway: tuple[Gateway, httpx.AsyncClient], redis_client: Redis
) -> None:
    gw, client = gateway
    claimed = await perfect_job_holding_a_slot(gw, client, redis_client)
    job_id = claimed.record.job.id
    response = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"
    assert await redis_client.zscore(SLOTS, job_id) is None


async def test_a_step_that_finds_its_job_canceled_releases_the_slot_it_holds(
    gateway: tuple[Gateway, httpx.AsyncClient], redis_client: Redis
) -> None:
    gw, client = gateway
    claimed = await perfect_job_holding_a_slot(gw, client, redis_client)
    job_id = claimed.record.job.id
    assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 200
    # the worker's step had reserved again before the cancel landed
    await redis_client.zadd(SLOTS, {job_id: now_ms() + HOLD_MS})
    with pytest.raises(SaveRefused):
        await gw.jobs.runner.step(claimed)
    assert await redis_client.zscore(SLOTS, job_id) is None


async def test_a_step_whose_job_was_only_reclaimed_keeps_the_slot(
    gateway: tuple[Gateway, httpx.AsyncClient], redis_client: Redis
) -> None:
    gw, client = gateway
    claimed = await perfect_job_holding_a_slot(gw, client, redis_client)
    job_id = claimed.record.job.id
    # the lease ran out and another worker holds the job now: it still runs upstream
    await gw.jobs.store.renew(job_id, claimed.lease or "", 0)
    (reclaimed,) = await gw.jobs.store.claim(1, 30)
    assert reclaimed.record.job.id == job_id
    with pytest.raises(SaveRefused):
        await gw.jobs.runner.step(claimed)
    assert await redis_client.zscore(SLOTS, job_id) is not None
