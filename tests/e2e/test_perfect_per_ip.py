"""Perfect Corp's limits as its document writes them, end to end: "Each IP address is allowed a
maximum of 100 requests per 5 minutes … Each access token … 100 requests per minute … Both
conditions must be met". Every request from the gateway's address counts; a task is admitted
only when the budget can keep it and every running task polled inside the 10-s rule.

Runs minutes by design (150 requests at 97 per 5 minutes): ``make faults`` runs it, ``make
test`` leaves it out (marker ``documented_rate``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.utils.deadlines import DOCUMENTED_RATE_S
from tests.utils.net import with_db
from tests.utils.perfect import check_all_succeeded_once, run_tasks
from tests.utils.processes import gateway

pytestmark = [pytest.mark.e2e, pytest.mark.documented_rate]


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
        jobs, stats = await run_tasks(api.url, count, timeout_s=DOCUMENTED_RATE_S)
    check_all_succeeded_once(jobs)
    assert stats["submissions"] == count
    assert stats["dropped"] == 0
    assert stats["longest_poll_gap_s"] < 10
    assert stats["over_limit"] == 0  # no 429, per token or per address
