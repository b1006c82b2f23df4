"""The gateway's own queue over HTTP: jobs waiting for one of a provider's job slots show their
place in line (``queue_position`` in ``GET /v1/jobs/{id}``), are sent in that order, and a job
canceled while it waits leaves the line.

Perfect Corp is run here at one task at a time per credential (``concurrent_jobs: 1``), its
emulator taking 3 s a task, so that the jobs behind the first one wait."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.utils.deadlines import JOB_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import PERFECT_PLAN, Process, gateway

pytestmark = pytest.mark.e2e

DB = 12
WAITING = "mg:upstream:perfectcorp:default:waiting"


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    plan = {**PERFECT_PLAN, "default": {"concurrent_jobs": 1}}
    with gateway(
        with_db(redis_url, DB),
        tmp_path_factory.mktemp("queue"),
        MEDIAGATE_SANDBOX_JOB_S="3",
        MEDIAGATE_PROVIDERS__PERFECTCORP__LIMITS=json.dumps(plan),
    ) as proc:
        yield proc


async def _jobs(client: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    return [(await client.get(f"/v1/jobs/{job_id}")).raise_for_status().json() for job_id in ids]


async def test_waiting_jobs_show_their_place_and_are_sent_in_that_order(
    client: httpx.AsyncClient, redis_url: str
) -> None:
    body = {"image": {"data": png_b64(64, 64)}, "provider": "perfectcorp", "fallback": False}
    ids = []
    for _ in range(5):
        created = await client.post("/v1/images/colorize", json=body)
        assert created.status_code == 202, created.text
        ids.append(created.json()["id"])

    # one runs; the four others wait in line, each knowing its place
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOB_S
    while True:
        jobs = await _jobs(client, ids)
        places = {job["id"]: job["queue_position"] for job in jobs}
        if sorted(p for p in places.values() if p is not None) == [1, 2, 3, 4]:
            break
        assert loop.time() < deadline, places
        await asyncio.sleep(0.1)
    line = sorted((p, job_id) for job_id, p in places.items() if p is not None)

    # the last in line is canceled: it leaves the line
    last = line[-1][1]
    canceled = (await client.post(f"/v1/jobs/{last}/cancel")).raise_for_status().json()
    assert canceled["status"] == "canceled" and canceled["queue_position"] is None
    redis = Redis.from_url(with_db(redis_url, DB))
    try:
        assert await redis.zscore(WAITING, last) is None
    finally:
        await redis.aclose()

    done = await wait_all_terminal(client, [job_id for _, job_id in line[:-1]], JOB_S)
    assert all(job["status"] == "succeeded" for job in done.values()), done
    assert all(job["queue_position"] is None for job in done.values())
    # sent in the order of their places (a first attempt that failed may go again later)
    sent = [done[job_id]["attempts"][0]["started_at"] for _, job_id in line[:-1]]
    assert sent == sorted(sent)
