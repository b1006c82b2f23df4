"""Perfect Corp loses a task that is not polled for 10 s. The gateway keeps every task alive:
1,000 at once on a contract big enough to poll them all (here), and on the document's numbers
(``test_perfect_per_ip.py``). The verdicts are outcomes: every job succeeded with one attempt,
no task dropped, no 429."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.utils.deadlines import LOAD_S
from tests.utils.net import with_db
from tests.utils.perfect import check_all_succeeded_once, run_tasks
from tests.utils.processes import PERFECT_IP_CONTRACT, gateway, start_worker

pytestmark = [pytest.mark.e2e, pytest.mark.long]


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
        "MEDIAGATE_SANDBOX_JOB_S": "15",
        "MEDIAGATE_TENANT_MAX_CONCURRENT_JOBS": "2000",
        "MEDIAGATE_TENANT_RATE_LIMIT_RPM": "100000",
        "MEDIAGATE_WORKER_CONCURRENCY": "256",
        # the subject is polling, not the breaker: slow answers on a busy machine must not
        # open Perfect's circuit and fail the jobs that wait to be submitted
        "MEDIAGATE_CIRCUIT__MIN_REQUESTS": "1000000",
    }
    with gateway(url, tmp_path, MEDIAGATE_RUN_WORKER="false", **plan) as api:
        worker = start_worker(url, tmp_path, api.url, **plan)
        try:
            jobs, stats = await run_tasks(api.url, count, timeout_s=LOAD_S)
        finally:
            worker.stop()
    check_all_succeeded_once(jobs)
    assert stats["submissions"] == count
    # however many ran upstream at once on this machine, none was lost for want of a poll
    assert stats["dropped"] == 0
    assert stats["longest_poll_gap_s"] < 10
    assert stats["over_limit"] == 0
