"""Prices by the unit and reconciliation, end to end: a gateway process with its sandbox over
real HTTP and a real Redis. Every job's reservation is at least its charge; the ledger entries
name unit, quantity and rate; ``mediagate admin reconcile`` lists what each provider cost."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.utils.deadlines import JOB_S, REQUEST_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import ADMIN_TOKEN, Process, gateway

pytestmark = [pytest.mark.e2e, pytest.mark.long]

REDIS_DB = 14


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    url = with_db(redis_url, REDIS_DB)
    redis.Redis.from_url(url).flushdb()
    # Upstream jobs last two seconds: long enough to cancel one the upstream has accepted.
    with gateway(url, tmp_path_factory.mktemp("pricing"), MEDIAGATE_SANDBOX_JOB_S="2") as proc:
        yield proc


@pytest.fixture
async def tenant(live: Process) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh tenant with 1,000 credits, and a client with its key."""
    async with httpx.AsyncClient(
        base_url=live.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=REQUEST_S
    ) as admin:
        # a rate limit far above what the storm's polling asks (its subject is credits)
        body = {"name": "pricing", "rate_limit_rpm": 100_000}
        made = (await admin.post("/admin/tenants", json=body)).json()
        key = (await admin.post(f"/admin/tenants/{made['id']}/keys")).json()
        granted = await admin.post(
            f"/admin/tenants/{made['id']}/credits", json={"amount": 1000, "reason": "test"}
        )
        assert granted.status_code == 200, granted.text
    async with httpx.AsyncClient(
        base_url=live.url, headers={"Authorization": f"Bearer {key['key']}"}, timeout=REQUEST_S
    ) as client:
        yield client


async def submit(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    response = await client.post(path, json={**body, "fallback": False})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def entries(client: httpx.AsyncClient, job_id: str) -> dict[str, dict[str, Any]]:
    page = (await client.get("/v1/usage", params={"job_id": job_id, "limit": 50})).json()
    return {e["kind"]: e for e in page["data"]}


async def balanced(client: httpx.AsyncClient) -> dict[str, Any]:
    """The account once nothing is held, checked against its whole ledger."""
    account: dict[str, Any] = (await client.get("/v1/account")).json()
    assert account["reserved"] == 0, account
    page = (await client.get("/v1/usage", params={"limit": 200})).json()
    assert page["next_cursor"] is None
    total = Counter[str]()
    for entry in page["data"]:
        total[entry["kind"]] += entry["amount"]
    assert account["balance"] == total["grant"] - total["debit"] - total["charge"]
    assert total["reserve"] + total["adjust"] == total["charge"] + total["release"]
    return account


async def test_tts_of_2500_characters_is_charged_by_the_1000_character_rule(
    tenant: httpx.AsyncClient,
) -> None:
    job_id = await submit(
        tenant, "/v1/audio/speech", {"text": "a" * 2500, "voice": "jack", "provider": "everypixel"}
    )
    job = (await wait_all_terminal(tenant, [job_id], JOB_S))[job_id]
    assert job["status"] == "succeeded", job
    assert job["credits"] == {
        "reserved": 10,
        "charged": 10,
        "unit": "1k_chars",
        "rate": "4",
        "quantity": 2.5,
    }
    (attempt,) = job["attempts"]
    assert attempt["upstream_cost"] == 10.0 and attempt["upstream_cost_reported"] is False
    ledger = await entries(tenant, job_id)
    assert ledger["charge"]["amount"] == 10
    assert ledger["charge"]["pricing"] == {"unit": "1k_chars", "quantity": "2.5", "rate": "4"}
    assert "release" not in ledger
    account = await balanced(tenant)
    assert account["balance"] == 990


async def test_a_12_second_audio_job_is_charged_by_its_seconds(
    tenant: httpx.AsyncClient,
) -> None:
    asked = await submit(
        tenant,
        "/v1/audio/generate",
        {"prompt": "a calm lofi beat", "duration_s": 12, "provider": "pixelapi"},
    )
    unsaid = await submit(
        tenant, "/v1/audio/generate", {"prompt": "a calm lofi beat", "provider": "pixelapi"}
    )
    done = await wait_all_terminal(tenant, [asked, unsaid], JOB_S)
    twelve, default = done[asked], done[unsaid]
    assert twelve["status"] == default["status"] == "succeeded", (twelve, default)
    assert twelve["output"]["artifacts"][0]["duration_s"] == pytest.approx(12.0)
    assert twelve["credits"] == {
        "reserved": 4,
        "charged": 4,
        "unit": "second",
        "rate": "1/3",
        "quantity": 12.0,
    }
    # No duration asked: the provider's most (30 s) is reserved, its default (15 s) charged.
    assert default["credits"]["reserved"] == 10
    assert (default["credits"]["charged"], default["credits"]["quantity"]) == (5, 15.0)
    for job in (twelve, default):
        assert job["credits"]["reserved"] >= job["credits"]["charged"]
        (attempt,) = job["attempts"]
        assert attempt["upstream_cost"] == 5.0 and attempt["upstream_cost_reported"] is True
    refunded = await entries(tenant, unsaid)
    assert refunded["charge"]["pricing"] == {"unit": "second", "quantity": "15", "rate": "1/3"}
    assert refunded["release"]["amount"] == 5
    await balanced(tenant)


async def cancel_once_accepted(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """Cancel the job as soon as its upstream has accepted the task (it has a task id)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOB_S
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["attempts"] and job["attempts"][-1]["provider_job_id"]:
            break
        assert job["status"] in ("queued", "running") and loop.time() < deadline, job
        await asyncio.sleep(0.05)
    response = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.json()["status"] == "canceled", response.text
    canceled: dict[str, Any] = response.json()
    return canceled


async def test_reconcile_reports_spend_charges_and_the_uncharged_cancel(
    live: Process, tenant: httpx.AsyncClient
) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    audio = {"prompt": "waves on a beach", "provider": "pixelapi"}
    finished = await submit(tenant, "/v1/audio/generate", audio)
    charged = await submit(tenant, "/v1/audio/generate", audio)
    paid = await cancel_once_accepted(tenant, charged)
    # Accepted work is charged by default: the reservation (30 s at 1/3 a second).
    assert (paid["credits"]["charged"], paid["credits"]["quantity"]) == (10, 30.0)
    tenant_id = (await tenant.get("/v1/account")).json()["tenant_id"]
    async with httpx.AsyncClient(
        base_url=live.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=REQUEST_S
    ) as admin:
        waive = await admin.patch(
            f"/admin/tenants/{tenant_id}", json={"charge_accepted_work": False}
        )
        assert waive.status_code == 200, waive.text
    waived = await submit(tenant, "/v1/audio/generate", audio)
    free = await cancel_once_accepted(tenant, waived)
    assert free["credits"]["charged"] == 0
    await wait_all_terminal(tenant, [finished, charged, waived], JOB_S)
    await balanced(tenant)

    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "admin", "--url", live.url, "--token", ADMIN_TOKEN]
        + ["reconcile", "--since", since],
        capture_output=True,
        text=True,
        timeout=JOB_S,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    pixelapi = next(p for p in report["providers"] if p["provider"] == "pixelapi")
    assert pixelapi["tasks_submitted"] >= 3
    assert pixelapi["upstream_spend"] >= 15.0  # PixelAPI reports 5 credits a task
    assert pixelapi["tenant_charges"] >= 5 + 10
    unpaid = {u["job_id"]: u for u in report["unpaid"]}
    assert unpaid[waived]["reason"] == "canceled_waived"
    assert unpaid[waived]["providers"] == ["pixelapi"]
    assert unpaid[waived]["upstream_cost"] == 5.0
    assert finished not in unpaid and charged not in unpaid
    assert report["unexplained"] == 0


async def test_a_cancel_storm_reconciles_with_nothing_unexplained(
    live: Process, tenant: httpx.AsyncClient
) -> None:
    """Sixty jobs at three providers, each canceled at a random moment (before submission,
    while the upstream runs it, after it finished): every job the upstream accepted before the
    cancel is charged its reservation, the others nothing; the ledger balances; reconcile
    explains every job paid upstream."""
    since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("/v1/audio/generate", {"prompt": "a storm at sea", "provider": "pixelapi"}),
        ("/v1/audio/speech", {"text": "a" * 700, "voice": "jack", "provider": "everypixel"}),
        ("/v1/images/upscale", {"image": {"data": png_b64(24, 24)}, "provider": "pixelapi"}),
    ]
    rng = random.Random(13)

    async def one(i: int) -> str:
        path, body = kinds[i % len(kinds)]
        job_id = await submit(tenant, path, body)
        await asyncio.sleep(rng.uniform(0, 3))
        response = await tenant.post(f"/v1/jobs/{job_id}/cancel")
        assert response.status_code in (200, 409), response.text
        return job_id

    ids = await asyncio.gather(*(one(i) for i in range(60)))
    jobs = await wait_all_terminal(tenant, ids, JOB_S)
    await balanced(tenant)
    for job in jobs.values():
        credits = job["credits"]
        assert credits["reserved"] >= credits["charged"], job
        accepted = any(a["provider_job_id"] for a in job["attempts"])
        if job["status"] == "succeeded" or (job["status"] == "canceled" and accepted):
            assert credits["charged"] > 0, job
        else:
            assert credits["charged"] == 0, job
    statuses = Counter(j["status"] for j in jobs.values())
    assert statuses["canceled"] > 0, statuses

    async with httpx.AsyncClient(
        base_url=live.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=REQUEST_S
    ) as admin:
        response = await admin.get("/admin/reconcile", params={"since": since})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["unexplained"] == 0, report["unpaid"]
    listed = {u["job_id"] for u in report["unpaid"]}
    assert not listed & set(ids)  # accepted work is charged by default: none paid for nothing
    accepted_at = Counter(
        a["provider"]
        for j in jobs.values()
        for a in j["attempts"]
        if a["upstream_cost"] is not None
    )
    by_provider = {p["provider"]: p for p in report["providers"]}
    for provider, count in accepted_at.items():
        assert by_provider[provider]["tasks_submitted"] >= count
