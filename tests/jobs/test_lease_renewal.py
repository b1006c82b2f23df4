"""A step keeps its job's lease while a slow upstream call runs: no other worker claims the
job meanwhile, so the upstream hears of it once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.domain.models import JobStatus
from app.providers.base import Call, SubmitResult
from tests.jobs.harness import Core, job_core, picture

LEASE_S = 2.0
"""The step's lease, renewed every third of it; the upstream call below outlasts it twice."""


@pytest.fixture
async def core(redis_client: Redis, tmp_path: Path) -> AsyncIterator[Core]:
    async with job_core(redis_client, tmp_path) as built:
        yield built


async def test_a_slow_upstream_call_keeps_its_job_leased(core: Core) -> None:
    job_id = await core.submit()
    stored = await core.claim(job_id)
    assert stored.lease is not None
    await core.store.renew(job_id, stored.lease, LEASE_S)  # the claim's lease, shortened
    core.runner.lease_s = LEASE_S
    answered = asyncio.Event()
    calls: list[Call] = []

    async def slow_submit(call: Call) -> SubmitResult:
        calls.append(call)
        await answered.wait()
        return picture()

    core.alpha.submit = slow_submit  # type: ignore[method-assign]
    step = asyncio.create_task(core.runner.step(stored))
    loop = asyncio.get_running_loop()
    until = loop.time() + 2.5 * LEASE_S
    while loop.time() < until:  # another worker looks for due and expired jobs meanwhile
        taken = [s.record.job.id for s in await core.store.claim(10, LEASE_S)]
        assert job_id not in taken, "the job's lease lapsed during the upstream call"
        await asyncio.sleep(LEASE_S / 10)
    answered.set()
    record = (await step).record
    assert record.job.status is JobStatus.succeeded
    assert len(calls) == 1
