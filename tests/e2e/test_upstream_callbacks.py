"""Upstream callbacks over real HTTP: the sandbox's Everypixel and ImagePipeline POST to the
gateway when a task ends, and the job finishes long before its next scheduled poll — yet only
after a status poll, which stays the one source of the outcome."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.conftest import SANDBOX_KEY
from tests.e2e.test_jobs import stats, wait_terminal
from tests.utils.deadlines import JOB_S, STARTUP_S
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway

pytestmark = [pytest.mark.e2e, pytest.mark.long]

REDIS_DB = 7
POLL_INTERVAL_S = 600.0
TASK_S = 2.0
SLOW_POLLS = {
    "MEDIAGATE_PROVIDERS__EVERYPIXEL__POLL_INTERVAL_S": str(POLL_INTERVAL_S),
    "MEDIAGATE_PROVIDERS__IMAGEPIPELINE__POLL_INTERVAL_S": str(POLL_INTERVAL_S),
    "MEDIAGATE_SANDBOX_JOB_S": str(TASK_S),
}
"""Upstream tasks end after two seconds; the gateway would first poll them after ten minutes."""
PROVIDERS = ("everypixel", "imagepipeline")
CALLBACK_SAMPLE = re.compile(
    r'^mediagate_upstream_callbacks_total\{outcome="(\w+)",provider="(\w+)"\} (\S+)$', re.M
)


@contextmanager
def slow_polling_gateway(redis_url: str, data_dir: Path, **extra: str) -> Iterator[Process]:
    url = with_db(redis_url, REDIS_DB)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    with gateway(url, data_dir, **SLOW_POLLS, **extra) as proc:
        yield proc


@asynccontextmanager
async def client_of(proc: Process) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {SANDBOX_KEY}"}
    async with httpx.AsyncClient(base_url=proc.url, headers=headers, timeout=30) as client:
        yield client


async def swap_face_at(client: httpx.AsyncClient, provider: str) -> str:
    response = await client.post(
        "/v1/images/swap-face",
        json={
            "source": {"data": png_b64(40, 40)},
            "target": {"data": png_b64(48, 40)},
            "provider": provider,
            "fallback": False,
        },
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def wait_submitted(
    client: httpx.AsyncClient, job_id: str, timeout_s: float = STARTUP_S
) -> None:
    """Until the upstream has accepted the job (its id is on the attempt)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["attempts"] and job["attempts"][-1].get("provider_job_id"):
            return
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.1)


def status_polls(provider_stats: dict[str, Any]) -> int:
    """Status requests the emulator served (``/v1/status``, ``…/status/{job_id}``)."""
    return sum(
        n for endpoint, n in provider_stats.get("by_endpoint", {}).items() if "status" in endpoint
    )


async def callbacks_counted(client: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    text = (await client.get("/metrics")).text
    return {(p, o): float(v) for o, p, v in CALLBACK_SAMPLE.findall(text)}


async def test_a_callback_ends_the_job_long_before_its_next_poll(
    redis_url: str, tmp_path: Path
) -> None:
    with slow_polling_gateway(redis_url, tmp_path) as proc:
        async with client_of(proc) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            job_ids = [await swap_face_at(client, p) for p in PROVIDERS]
            jobs = await asyncio.gather(*(wait_terminal(client, j, JOB_S) for j in job_ids))
            elapsed = loop.time() - started
            for provider, job in zip(PROVIDERS, jobs, strict=True):
                assert job["status"] == "succeeded", job
                assert job["provider"] == provider
                assert len(job["attempts"]) == 1 and job["attempts"][0]["provider_job_id"]
            # ended before the first scheduled poll: nothing but the callback could have done it
            assert elapsed < POLL_INTERVAL_S, f"{elapsed:.1f} s: the callbacks did not help"
            counted = await callbacks_counted(client)
            for provider in PROVIDERS:
                upstream = await stats(client, provider)
                assert upstream["submissions"] == 1, upstream
                # verification: the outcome was read from a status poll, not from the callback
                assert status_polls(upstream) >= 1, upstream
                assert counted.get((provider, "expedited")) == 1, counted


async def test_without_callbacks_the_upstream_is_given_none(redis_url: str, tmp_path: Path) -> None:
    """The public URL is set, but callbacks are switched off: nothing calls the gateway back
    when the tasks end, and the jobs wait for their scheduled poll."""
    with slow_polling_gateway(redis_url, tmp_path, MEDIAGATE_UPSTREAM_CALLBACKS="false") as proc:
        async with client_of(proc) as client:
            job_ids = [await swap_face_at(client, p) for p in PROVIDERS]
            for job_id in job_ids:
                await wait_submitted(client, job_id)
            await asyncio.sleep(TASK_S + 2)  # the tasks end upstream, with time for a callback
            for job_id in job_ids:
                job = (await client.get(f"/v1/jobs/{job_id}")).json()
                assert job["status"] == "running", job
            assert await callbacks_counted(client) == {}
            for provider in PROVIDERS:
                upstream = await stats(client, provider)
                assert upstream["submissions"] == 1, upstream
                assert status_polls(upstream) == 0, upstream
