"""A worker killed with ``kill -9`` mid-job loses nothing and submits nothing twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.conftest import SANDBOX_KEY
from tests.utils.deadlines import IN_FLIGHT_S, JOB_S, REQUEST_S, STARTUP_S
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import gateway, start_worker
from tests.utils.sandbox import CONTROL

pytestmark = [pytest.mark.e2e, pytest.mark.long]

JOBS = 12


async def test_killed_worker_jobs_resume_by_polling(redis_url: str, tmp_path: Path) -> None:
    url = with_db(redis_url, 2)
    redis.Redis.from_url(url).flushdb()
    settings = {"MEDIAGATE_SANDBOX_JOB_S": str(IN_FLIGHT_S), "MEDIAGATE_LEASE_S": "2"}
    with gateway(url, tmp_path, MEDIAGATE_RUN_WORKER="false", **settings) as api:
        first = start_worker(url, tmp_path, api.url, **settings)
        second = None
        try:
            async with httpx.AsyncClient(
                base_url=api.url,
                headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
                timeout=REQUEST_S,
            ) as client:
                ids = []
                for _ in range(JOBS):
                    created = await client.post(
                        "/v1/images/remove-background",
                        json={"image": {"data": png_b64()}, "provider": "pixelapi"},
                    )
                    assert created.status_code == 202, created.text
                    ids.append(created.json()["id"])

                # Wait until the first worker has submitted every job upstream...
                deadline = time.monotonic() + STARTUP_S + IN_FLIGHT_S
                while True:
                    jobs = [(await client.get(f"/v1/jobs/{i}")).json() for i in ids]
                    if all(j["attempts"] and j["attempts"][-1]["provider_job_id"] for j in jobs):
                        break
                    assert time.monotonic() < deadline, "jobs were never submitted"
                    await asyncio.sleep(0.1)
                assert all(j["status"] == "running" for j in jobs)

                # ...then kill it before any upstream job completes, and start another.
                first.kill()
                second = start_worker(url, tmp_path, api.url, **settings)

                deadline = time.monotonic() + IN_FLIGHT_S + JOB_S
                while True:
                    jobs = [(await client.get(f"/v1/jobs/{i}")).json() for i in ids]
                    if all(j["status"] in ("succeeded", "failed", "canceled") for j in jobs):
                        break
                    assert time.monotonic() < deadline, [j["status"] for j in jobs]
                    await asyncio.sleep(0.2)

                assert [j["status"] for j in jobs] == ["succeeded"] * JOBS
                assert all(len(j["attempts"]) == 1 for j in jobs)
                stats = (await client.get("/_sandbox/stats", headers=CONTROL)).json()["pixelapi"]
                assert stats["submissions"] == JOBS  # resumed by polling, never resubmitted
        finally:
            first.stop()
            if second is not None:
                second.stop()
