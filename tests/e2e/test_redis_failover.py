"""The Redis primary killed with SIGKILL under load, a replica promoted by real Sentinels.

300 PixelAPI jobs are accepted (each after ``WAIT`` for the replica) and submitted upstream
by a worker; with all of them running at the emulator, the primary is killed. The gateway
and the worker reach Redis only through a ``redis+sentinel://`` URL and are not restarted:
they answer 503 / retry while there is no primary, then carry on against the promoted
replica. Every job ends ``succeeded`` with one attempt, the emulator saw exactly 300
submissions (none twice), and the ledger balances: each job reserved and charged once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_crash_under_load import Admin, in_flight_upstream, ledger
from tests.utils.clients import load_limits
from tests.utils.deadlines import IN_FLIGHT_S, LOAD_S, REQUEST_S
from tests.utils.jobs import TERMINAL
from tests.utils.media import png_b64
from tests.utils.processes import ADMIN_TOKEN, Process, gateway, start_worker
from tests.utils.sentinel import sentinel_topology

pytestmark = [pytest.mark.e2e, pytest.mark.long]

JOBS = 300
JOB_S = IN_FLIGHT_S
"""How long every upstream job runs: longer than submitting all of them takes."""
PLAN = {"default": {"requests_per_minute": 12000}}
SETTINGS = {
    "MEDIAGATE_SANDBOX_JOB_S": str(JOB_S),
    "MEDIAGATE_LEASE_S": "3",
    "MEDIAGATE_WORKER_METRICS_PORT": "0",
    "MEDIAGATE_PROVIDERS__PIXELAPI__POLL_INTERVAL_S": "2",
    "MEDIAGATE_PROVIDERS__PIXELAPI__LIMITS": json.dumps(PLAN),
    "MEDIAGATE_SANDBOX_RATE_LIMITS": json.dumps({"pixelapi": 12000}),
    "MEDIAGATE_REDIS_WAIT_REPLICAS": "1",
    "MEDIAGATE_REDIS_WAIT_TIMEOUT_MS": "5000",
}
GRANT = 1_000_000


async def jobs_of(client: httpx.AsyncClient) -> dict[str, dict[str, Any]] | None:
    """Every job of the tenant, or None while the store cannot answer (no primary yet)."""
    jobs: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        try:
            page = await client.get("/v1/jobs", params=params)
        except httpx.TransportError:
            return None
        if page.status_code == 503:
            return None
        body = page.raise_for_status().json()
        jobs |= {j["id"]: j for j in body["data"]}
        cursor = body["next_cursor"]
        if not cursor:
            return jobs


async def wait_for(
    client: httpx.AsyncClient,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float,
    what: str,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    seen: Counter[str] = Counter()
    while True:
        jobs = await jobs_of(client)
        if jobs is not None:
            if len(jobs) == JOBS and done(list(jobs.values())):
                return list(jobs.values())
            seen = Counter(j["status"] for j in jobs.values())
        assert time.monotonic() < deadline, f"{what}: {dict(seen)}"
        # each round lists all 300 jobs (three pages the gateway renders): once a second is
        # often enough to see every job in flight long before the first of them ends
        await asyncio.sleep(1.0)


async def test_primary_killed_under_load_loses_no_job_and_submits_none_twice(
    tmp_path: Path,
) -> None:
    workers: list[Process] = []
    with sentinel_topology(tmp_path / "redis") as redis_nodes:
        url = redis_nodes.url(0)
        with gateway(url, tmp_path, MEDIAGATE_RUN_WORKER="false", **SETTINGS) as api:
            try:
                admin = Admin(api.url)
                async with admin.client:
                    tenant_id, key = await admin.tenant()
                    await admin.grant(tenant_id, GRANT)
                async with httpx.AsyncClient(
                    base_url=api.url,
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=REQUEST_S,
                    limits=load_limits(32),
                ) as client:
                    controls = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # the sandbox's
                    cleared = await client.delete("/_sandbox/faults", headers=controls)
                    assert cleared.status_code == 204  # counters at 0
                    gate = asyncio.Semaphore(16)
                    body = {
                        "image": {"data": png_b64(20, 16)},
                        "provider": "pixelapi",
                        "fallback": False,
                    }

                    async def create() -> tuple[str, int]:
                        async with gate:
                            created = await client.post("/v1/images/remove-background", json=body)
                        assert created.status_code == 202, created.text
                        job = created.json()
                        return str(job["id"]), int(job["credits"]["reserved"])

                    reserved = dict(await asyncio.gather(*(create() for _ in range(JOBS))))
                    assert len(reserved) == JOBS
                    workers.append(start_worker(url, tmp_path, api.url, **SETTINGS))

                    jobs = await wait_for(
                        client,
                        lambda jobs: all(in_flight_upstream(j) for j in jobs),
                        LOAD_S,
                        "not every job was submitted upstream in time",
                    )
                    assert Counter(j["status"] for j in jobs) == {"running": JOBS}

                    redis_nodes.primary.kill()
                    redis_nodes.wait_promoted()

                    jobs = await wait_for(
                        client,
                        lambda jobs: all(j["status"] in TERMINAL for j in jobs),
                        LOAD_S,
                        "jobs left unfinished after the failover",
                    )
                    failed = {j["id"]: j["error"] for j in jobs if j["status"] != "succeeded"}
                    assert failed == {}
                    assert all(len(j["attempts"]) == 1 for j in jobs)
                    assert workers[0].popen.poll() is None  # the same worker, never restarted

                    stats = (await client.get("/_sandbox/stats", headers=controls)).json()
                    stats = stats["pixelapi"]
                    assert stats["submissions"] == JOBS  # 0 duplicate upstream submissions
                    assert stats["over_limit"] == 0

                    by_id = {j["id"]: j for j in jobs}
                    assert {i: by_id[i]["credits"]["charged"] for i in reserved} == reserved
                    account = (await client.get("/v1/account")).json()
                    assert account["reserved"] == 0
                    assert account["balance"] == GRANT - sum(reserved.values())
                    entries = await ledger(client)
                    assert Counter(e["kind"] for e in entries) == {
                        "grant": 1,
                        "reserve": JOBS,
                        "charge": JOBS,
                    }
                    charged = {e["job_id"]: e["amount"] for e in entries if e["kind"] == "charge"}
                    assert charged == reserved
            finally:
                for worker in workers:
                    worker.stop()
