"""Perfect Corp loses a task that is not polled for 10 s. The gateway keeps every task alive:
1,000 at once on a plan big enough to poll them all, and on the documented plan (100
requests per minute per token) by running no more tasks than its budget can keep polling."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.conftest import SANDBOX_KEY
from tests.utils.deadlines import JOB_S, LOAD_S, REQUEST_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_bytes
from tests.utils.net import with_db
from tests.utils.processes import gateway, start_worker
from tests.utils.sandbox import CONTROL

pytestmark = pytest.mark.e2e


async def _run_tasks(
    api_url: str, count: int, timeout_s: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Submit ``count`` background removals pinned to Perfect at once; wait for all to end.
    Returns the jobs and the Perfect emulator's counters."""
    async with httpx.AsyncClient(
        base_url=api_url,
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        timeout=REQUEST_S,
        limits=httpx.Limits(max_connections=32),
    ) as client:
        await client.delete("/_sandbox/faults", headers=CONTROL)
        uploaded = await client.post(
            "/v1/files", files={"file": ("photo.png", png_bytes(48, 48), "image/png")}
        )
        assert uploaded.status_code == 201, uploaded.text
        image = {"file_id": uploaded.json()["id"]}

        async def submit(i: int) -> str:
            response = await client.post(
                "/v1/images/remove-background",
                json={
                    "image": image,
                    "provider": "perfectcorp",
                    "fallback": False,
                    "metadata": {"i": i},
                },
            )
            assert response.status_code == 202, response.text
            return str(response.json()["id"])

        ids = await asyncio.gather(*(submit(i) for i in range(count)))
        done = await wait_all_terminal(client, ids, timeout_s, every_s=1.0)
        stats = (await client.get("/_sandbox/stats", headers=CONTROL)).json()["perfectcorp"]
    return list(done.values()), stats


def _check_all_succeeded_once(jobs: list[dict[str, Any]]) -> None:
    failures = [j["error"] for j in jobs if j["status"] != "succeeded"]
    assert not failures, failures[:3]
    # a dropped task would have failed its attempt (InvalidTaskId) and been tried again
    assert all(len(j["attempts"]) == 1 for j in jobs)


async def test_a_thousand_concurrent_tasks_polling_every_2_s_lose_none(
    redis_url: str, tmp_path: Path
) -> None:
    count = 1000
    url = with_db(redis_url, 8)
    redis.Redis.from_url(url).flushdb()
    plan = {
        # an account whose plan polls 1,000 tasks every 2 s (500 requests a second)
        "MEDIAGATE_SANDBOX_RATE_LIMITS": json.dumps({"perfectcorp": 60_000}),
        "MEDIAGATE_PROVIDERS__PERFECTCORP__LIMITS": json.dumps(
            {"default": {"requests_per_minute": 60_000}}
        ),
        "MEDIAGATE_SANDBOX_POLLING_INTERVAL_MS": "2000",
        # long enough for all 1,000 to be submitted before the first one ends
        "MEDIAGATE_SANDBOX_JOB_S": "25",
        "MEDIAGATE_TENANT_MAX_CONCURRENT_JOBS": "2000",
        "MEDIAGATE_TENANT_RATE_LIMIT_RPM": "100000",
        "MEDIAGATE_WORKER_CONCURRENCY": "256",
    }
    with gateway(url, tmp_path, MEDIAGATE_RUN_WORKER="false", **plan) as api:
        worker = start_worker(url, tmp_path, api.url, **plan)
        try:
            jobs, stats = await _run_tasks(api.url, count, timeout_s=LOAD_S)
        finally:
            worker.stop()
    _check_all_succeeded_once(jobs)
    assert stats["submissions"] == count
    # however many ran upstream at once on this machine, none was lost for want of a poll
    assert stats["dropped"] == 0
    assert stats["longest_poll_gap_s"] < 10
    assert stats["over_limit"] == 0


async def test_on_the_documented_plan_no_more_tasks_run_than_polls_keep_alive(
    redis_url: str, tmp_path: Path
) -> None:
    count = 7
    url = with_db(redis_url, 8)
    redis.Redis.from_url(url).flushdb()
    settings = {
        "MEDIAGATE_SANDBOX_POLLING_INTERVAL_MS": "2000",
        "MEDIAGATE_SANDBOX_JOB_S": "3",
    }
    with gateway(url, tmp_path, **settings) as api:
        jobs, stats = await _run_tasks(api.url, count, timeout_s=JOB_S)
    _check_all_succeeded_once(jobs)
    assert stats["submissions"] == count
    # 100 requests/min per token keep 3 tasks polled inside 10 s (the adapter's reading)
    assert stats["peak_in_flight"] == 3
    assert stats["dropped"] == 0
    assert stats["longest_poll_gap_s"] < 10
    assert stats["over_limit"] == 0
