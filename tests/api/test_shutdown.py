"""A process stopping while a ``Prefer: wait`` job's step is under way: the step finishes
before the process closes the clients it uses (``JobService.drain``), so its upstream's
answer is on the record instead of the job being left ``submitting`` — to be submitted, and
paid for, again by whoever resumes it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from app.config import SANDBOX_TENANT_KEY
from app.domain.models import AttemptStatus, JobStatus
from app.providers.base import Call, SubmitResult
from app.store.jobs import JobStore
from app.store.scripts import Scripts
from tests.utils.in_process import in_process_gateway
from tests.utils.servers import serve_sandbox

AUTH = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}", "Prefer": "wait=1"}
PROMPT = {"prompt": "a lighthouse at dusk", "provider": "imagepig"}


async def test_a_step_under_way_when_the_process_stops_is_finished_first(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> None:
    release = asyncio.Event()
    calls = 0
    with serve_sandbox(job_s=0) as upstream:
        async with in_process_gateway(redis_url, tmp_path, sandbox=True, sandbox_url=upstream) as (
            gateway,
            client,
        ):
            adapter = gateway.jobs.providers["imagepig"]
            submit = adapter.submit

            async def held_submit(call: Call) -> SubmitResult:
                nonlocal calls
                calls += 1
                await release.wait()  # the upstream still working when the process stops
                return await submit(call)

            adapter.submit = held_submit  # type: ignore[method-assign]
            answered = await client.post("/v1/images/generate", json=PROMPT, headers=AUTH)
            assert answered.status_code == 202, answered.text
            job_id = answered.json()["id"]
            assert answered.json()["status"] == "running"
            # the upstream answers a moment after the process began to stop
            asyncio.get_running_loop().call_later(0.5, release.set)
    store = JobStore(redis_client, Scripts.register(redis_client), retention_s=60)
    stored = await store.get(job_id)
    assert stored is not None
    job = stored.record.job
    assert job.status is JobStatus.succeeded, job
    assert calls == 1
    assert [attempt.status for attempt in job.attempts] == [AttemptStatus.succeeded]
    assert stored.lease is None
