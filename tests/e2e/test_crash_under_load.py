"""200 mixed jobs in flight upstream, the worker killed with ``kill -9`` twice: every job still
ends ``succeeded``, no upstream job is submitted twice (the emulators' counters) and no job is
charged twice (the tenant's balance and ledger).

The jobs are spread over the four asynchronous providers (PixelAPI, Perfect Corp, ImagePipeline,
Everypixel's tasks), several operations each, every job pinned to its provider without fallback
so the emulators' submission counts per provider are exact. The sandbox's jobs take
``JOB_S`` seconds, longer than submitting all 200, so all of them run upstream at once when the
first worker dies; the second dies after it resumed some of them (polled them to the end) but
not all; a third finishes the rest.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.providers_check import base_bodies
from tests.utils.clients import load_limits
from tests.utils.deadlines import IN_FLIGHT_S, LOAD_S, REQUEST_S, STARTUP_S
from tests.utils.jobs import TERMINAL
from tests.utils.net import with_db
from tests.utils.processes import ADMIN_TOKEN, PERFECT_PLAN, Process, gateway, start_worker
from tests.utils.sandbox import CONTROL

# Beside three other test processes on two cores, Perfect Corp's 10 s without a poll can
# pass during a kill -9 and drop a task: it runs alone, in `make faults`.
pytestmark = [pytest.mark.e2e, pytest.mark.machine_alone]

JOB_S = IN_FLIGHT_S
"""How long every upstream job runs: longer than it takes to submit all of them."""
PLAN = {"default": {"requests_per_minute": 12000}}
"""A plan big enough for 200 jobs polled every second, on both sides (gateway budget and
emulator) for the providers whose documented plans are far smaller."""
SETTINGS = {
    "MEDIAGATE_SANDBOX_JOB_S": str(JOB_S),
    "MEDIAGATE_LEASE_S": "3",
    "MEDIAGATE_WORKER_METRICS_PORT": "0",
    "MEDIAGATE_PROVIDERS__PIXELAPI__POLL_INTERVAL_S": "1",
    "MEDIAGATE_PROVIDERS__PIXELAPI__LIMITS": json.dumps(PLAN),
    "MEDIAGATE_PROVIDERS__PERFECTCORP__LIMITS": json.dumps(PLAN | PERFECT_PLAN),
    "MEDIAGATE_SANDBOX_RATE_LIMITS": json.dumps({"pixelapi": 12000, "perfectcorp": 12000}),
}

MIX: dict[str, tuple[int, list[str]]] = {
    "pixelapi": (
        80,
        [
            "image.generate",
            "image.remove_background",
            "image.replace_background",
            "image.upscale",
            "image.restore_face",
            "image.remove_object",
            "image.try_on",
            "audio.generate",
        ],
    ),
    "perfectcorp": (
        60,
        [
            "image.age",
            "image.colorize",
            "image.remove_background",
            "image.upscale",
            "image.transfer_makeup",
            "image.remove_object",
        ],
    ),
    "imagepipeline": (
        52,
        [
            "image.swap_face",
            "image.lock_identity",
            "image.replace_identity",
            "image.instamodel",
            "image.try_on",
            "audio.clone_voice",
        ],
    ),
    # Everypixel runs each kind of task one at a time per account: two of each kind keep the
    # last of them running until twice JOB_S, after the second worker has resumed the others.
    "everypixel": (8, ["audio.speech", "image.swap_face", "video.swap_face", "video.lipsync"]),
}
"""Provider → (jobs, the operations they cycle through)."""
JOBS = sum(count for count, _ in MIX.values())
GRANT_MARGIN = 500
"""Credits granted over the jobs' total: a double charge shows as a lower balance, not a 402."""


@dataclass(frozen=True)
class Request:
    provider: str
    operation: str
    route: str
    body: dict[str, Any]
    price: int


async def plan_requests(client: httpx.AsyncClient) -> list[Request]:
    """MIX as requests: each operation's first example body (``providers_check``; remove object
    by mask) trimmed to what the binding accepts, with its route and price from the catalog."""
    catalog = (await client.get("/v1/operations")).raise_for_status().json()["data"]
    voices = (await client.get("/v1/voices")).raise_for_status().json()["data"]
    bodies = base_bodies()
    requests = []
    for provider, (count, operations) in MIX.items():
        planned = []
        for name in operations:
            op = next(o for o in catalog if o["name"] == name)
            binding = next(b for b in op["providers"] if b["name"] == provider)
            accepted = {p["name"] for p in binding["parameters"]}
            body = {k: v for k, v in bodies[name][0].items() if k in accepted}
            if name == "audio.speech":
                body["voice"] = next(v["id"] for v in voices if v["provider"] == provider)
            body |= {"provider": provider, "fallback": False}
            planned.append(Request(provider, name, op["route"], body, binding["price"]))
        requests += [planned[i % len(planned)] for i in range(count)]
    assert len(requests) == JOBS == 200
    return requests


async def all_jobs(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Every job of the tenant, by id (two pages of the listing)."""
    jobs: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/jobs", params=params)).raise_for_status().json()
        jobs |= {j["id"]: j for j in page["data"]}
        cursor = page["next_cursor"]
        if not cursor:
            return jobs


async def wait_for(
    client: httpx.AsyncClient,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float,
    what: str,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = list((await all_jobs(client)).values())
        if len(jobs) == JOBS and done(jobs):
            return jobs
        statuses = Counter(j["status"] for j in jobs)
        assert time.monotonic() < deadline, f"{what}: {dict(statuses)}"
        await asyncio.sleep(0.3)


def in_flight_upstream(job: dict[str, Any]) -> bool:
    return bool(job["attempts"]) and job["attempts"][-1]["provider_job_id"] is not None


async def ledger(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/usage", params=params)).raise_for_status().json()
        entries += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries


class Admin:
    """The admin API: one tenant for the test, allowed 200 unfinished jobs and a busy client."""

    def __init__(self, api: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=api, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=REQUEST_S
        )

    async def tenant(self) -> tuple[str, str]:
        """A new tenant's id and API key."""
        limits = {"rate_limit_rpm": 1_000_000, "max_concurrent_jobs": 1000}
        created = await self.client.post("/admin/tenants", json={"name": "load", **limits})
        tenant = created.raise_for_status().json()
        key = await self.client.post(f"/admin/tenants/{tenant['id']}/keys")
        return str(tenant["id"]), str(key.raise_for_status().json()["key"])

    async def grant(self, tenant_id: str, credits: int) -> None:
        granted = await self.client.post(
            f"/admin/tenants/{tenant_id}/credits", json={"amount": credits, "reason": "test"}
        )
        assert granted.status_code == 200, granted.text

    async def flat_prices(self) -> None:
        """Pin MIX's bindings priced by the unit to a flat price (the most a job costs there):
        this test counts one charge of a known price per job; prices by the unit have their
        own tests (``tests/e2e/test_pricing.py``)."""
        rows = (await self.client.get("/admin/prices")).raise_for_status().json()["data"]
        for row in rows:
            if row["operation"] in MIX.get(row["provider"], (0, []))[1]:
                if row["rule"]["unit"] != "job":
                    body = {k: row[k] for k in ("operation", "provider", "credits")}
                    pinned = await self.client.put("/admin/prices", json=body)
                    assert pinned.status_code == 200, pinned.text


async def test_200_jobs_survive_two_kill_9s_without_double_submits_or_charges(
    redis_url: str, tmp_path: Path
) -> None:
    url = with_db(redis_url, 6)
    redis.Redis.from_url(url).flushdb()
    workers: list[Process] = []
    with gateway(url, tmp_path, MEDIAGATE_RUN_WORKER="false", **SETTINGS) as api:
        try:
            admin = Admin(api.url)
            async with admin.client:
                tenant_id, key = await admin.tenant()
                await admin.flat_prices()
                async with httpx.AsyncClient(
                    base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=REQUEST_S
                ) as planner:
                    await planner.delete(
                        "/_sandbox/faults", headers=CONTROL
                    )  # none armed, counters at 0
                    requests = await plan_requests(planner)
                await admin.grant(tenant_id, sum(r.price for r in requests) + GRANT_MARGIN)
            async with httpx.AsyncClient(
                base_url=api.url,
                headers={"Authorization": f"Bearer {key}"},
                timeout=httpx.Timeout(REQUEST_S, pool=None),
                limits=load_limits(32),
            ) as client:
                # All 200 are created while no worker runs, then the first one submits them.
                gate = asyncio.Semaphore(16)

                async def create(request: Request) -> tuple[str, Request]:
                    async with gate:
                        created = await client.post(request.route, json=request.body)
                    assert created.status_code == 202, (request.operation, created.text)
                    job = created.json()
                    assert job["credits"]["reserved"] == request.price
                    return str(job["id"]), request

                sent = dict(await asyncio.gather(*(create(r) for r in requests)))
                workers.append(start_worker(url, tmp_path, api.url, **SETTINGS))

                # Every job submitted upstream, none finished there yet: kill -9.
                jobs = await wait_for(
                    client,
                    lambda jobs: all(in_flight_upstream(j) for j in jobs),
                    STARTUP_S + JOB_S,  # the worker starts, then submits them all
                    "not every job was submitted upstream in time",
                )
                # The second worker starts as the first dies (a standby replica: its start-up on
                # a busy machine is not a gap in which Perfect would drop unpolled tasks).
                workers.append(start_worker(url, tmp_path, api.url, **SETTINGS))
                workers[0].kill()
                assert Counter(j["status"] for j in jobs) == {"running": JOBS}

                # The second worker resumes them (some finish by its polls), then dies too.
                jobs = await wait_for(
                    client,
                    lambda jobs: sum(j["status"] == "succeeded" for j in jobs) >= JOBS // 10,
                    LOAD_S,
                    "the second worker did not resume the jobs",
                )
                workers.append(start_worker(url, tmp_path, api.url, **SETTINGS))
                workers[1].kill()
                assert sum(j["status"] in TERMINAL for j in jobs) < JOBS, "nothing left to resume"

                # The third finishes the rest.
                jobs = await wait_for(
                    client,
                    lambda jobs: all(j["status"] in TERMINAL for j in jobs),
                    LOAD_S,
                    "jobs left unfinished",
                )

                failed = {j["id"]: j["error"] for j in jobs if j["status"] != "succeeded"}
                assert failed == {}
                assert all(len(j["attempts"]) == 1 for j in jobs), [
                    j["attempts"] for j in jobs if len(j["attempts"]) != 1
                ]

                # 0 duplicate upstream submissions, and no request refused for going too fast.
                stats = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
                sent_to = Counter(r.provider for r in sent.values())
                assert {p: stats[p]["submissions"] for p in MIX} == dict(sent_to)
                assert {p: stats[p]["over_limit"] for p in MIX} == dict.fromkeys(MIX, 0)
                assert {p: stats[p]["faults_served"] for p in MIX} == dict.fromkeys(MIX, 0)

                # 0 double charges: each job charged its price once, the balance down by the sum.
                by_id = {j["id"]: j for j in jobs}
                assert {i: by_id[i]["credits"]["charged"] for i in sent} == {
                    i: r.price for i, r in sent.items()
                }
                account = (await client.get("/v1/account")).json()
                assert (account["balance"], account["reserved"]) == (GRANT_MARGIN, 0)
                entries = await ledger(client)
                charges = Counter(e["job_id"] for e in entries if e["kind"] == "charge")
                assert charges == Counter(sent.keys())
                charged = {e["job_id"]: e["amount"] for e in entries if e["kind"] == "charge"}
                assert charged == {i: r.price for i, r in sent.items()}
                assert Counter(e["kind"] for e in entries) == {
                    "grant": 1,
                    "reserve": JOBS,
                    "charge": JOBS,
                }
        finally:
            for worker in workers:
                worker.stop()
