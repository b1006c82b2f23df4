"""Perfect Corp loses a task that is not polled for 10 s. The gateway keeps every task alive:
1,000 at once on a contract big enough to poll them all, and on the document's numbers (100
requests per minute per token and 100 per 5 minutes per address, every request counting) by
admitting a task only when the budget can keep it and every running one polled to the end.
The verdicts are outcomes: every job succeeded with one attempt, no task dropped, no 429."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.conftest import SANDBOX_KEY
from tests.utils.deadlines import DOCUMENTED_RATE_S, LOAD_S, REQUEST_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_bytes
from tests.utils.net import with_db
from tests.utils.processes import PERFECT_IP_CONTRACT, gateway, start_worker
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
        "MEDIAGATE_SANDBOX_IP_LIMITS": json.dumps({"perfectcorp": PERFECT_IP_CONTRACT}),
        "MEDIAGATE_PROVIDERS__PERFECTCORP__LIMITS": json.dumps(
            {
                "default": {"requests_per_minute": 60_000},
                "egress": {"requests_per_minute": PERFECT_IP_CONTRACT / 5},
            }
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


async def test_on_the_documents_numbers_fifty_jobs_at_once_all_succeed_without_a_429(
    redis_url: str, tmp_path: Path
) -> None:
    """The document's per-token and per-IP limits on both sides: 50 jobs submitted at once
    cost at least 150 requests, more than one 5-minute window allows, so they run one task at
    a time as the per-IP budget keeps it polled; none is lost and the upstream never answers
    429."""
    count = 50
    url = with_db(redis_url, 8)
    redis.Redis.from_url(url).flushdb()
    documents_numbers = {
        "MEDIAGATE_SANDBOX_IP_LIMITS": "{}",
        "MEDIAGATE_SANDBOX_RATE_LIMITS": "{}",
        "MEDIAGATE_PROVIDERS__PERFECTCORP__LIMITS": "{}",
        "MEDIAGATE_SANDBOX_POLLING_INTERVAL_MS": "2000",
        "MEDIAGATE_TENANT_MAX_CONCURRENT_JOBS": "100",
        "MEDIAGATE_TENANT_RATE_LIMIT_RPM": "100000",
    }
    # 50 tasks × (2 + 1 or 2 polls) requests at 97 per 5 minutes: about 8 minutes of waiting
    with gateway(url, tmp_path, **documents_numbers) as api:
        jobs, stats = await _run_tasks(api.url, count, timeout_s=DOCUMENTED_RATE_S)
    _check_all_succeeded_once(jobs)
    assert stats["submissions"] == count
    assert stats["dropped"] == 0
    assert stats["longest_poll_gap_s"] < 10
    assert stats["over_limit"] == 0  # no 429, per token or per address
