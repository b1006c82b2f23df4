"""Upstream spend against tenant charges, over jobs made through the API and the store on a
real Redis: what each attempt cost the provider, the spend stream written by terminal saves,
and ``GET /admin/reconcile`` listing every job paid upstream but not charged, with its reason."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.config import SANDBOX_TENANT_KEY
from app.domain.errors import ErrorCode
from app.domain.models import (
    Artifact,
    Attempt,
    AttemptStatus,
    ChargeReason,
    JobError,
    JobOutput,
    JobStatus,
)
from app.gateway import Gateway
from app.jobs.accounting import note_reported_cost
from app.jobs.late_answers import end_attempt
from app.providers.base import Submitted
from app.sandbox import av
from app.store.jobs import Schedule, Stored
from tests.utils.in_process import in_process_gateway
from tests.utils.media import png_b64

ADMIN = "test-admin-token-reconcile-0123456789abcdef"


@pytest.fixture
async def gateway(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """An in-process sandbox gateway (``redis_client`` first: it empties the database)."""
    headers = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
    async with in_process_gateway(
        redis_url, tmp_path, headers=headers, sandbox=True, admin_token=ADMIN
    ) as built:
        yield built


async def submit(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json={**body, "fallback": False})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def accepted(
    gw: Gateway, job_id: str, result: Submitted, *, charge_accepted_work: bool = True
) -> Stored:
    """The job as a worker leaves it once the upstream accepted its task."""
    (claimed,) = [c for c in await gw.jobs.store.claim(50, 30) if c.record.job.id == job_id]
    attempt = Attempt(provider=claimed.record.plan[0])
    claimed.record.job.attempts.append(attempt)
    note_reported_cost(attempt, result)
    attempt.provider_job_id = result.provider_job_id
    attempt.status = AttemptStatus.running
    claimed.record.job.status = JobStatus.running
    claimed.record.job.provider = attempt.provider
    claimed.record.charge_accepted_work = charge_accepted_work
    return await gw.jobs.store.save(claimed, schedule=Schedule.keep, lease=claimed.lease)


async def test_reconcile_lists_paid_but_uncharged_jobs_with_their_reason(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gw, client = gateway
    lifecycle = gw.jobs.runner.lifecycle
    since = datetime.now(UTC) - timedelta(seconds=1)
    speech = {"text": "a" * 2500, "voice": "jack", "provider": "everypixel"}
    waived = await submit(client, "/v1/audio/speech", speech)
    assert waived["credits"] == {
        "reserved": 10,
        "charged": 0,
        "unit": "1k_chars",
        "rate": "4",
        "quantity": 2.5,
    }
    await accepted(gw, waived["id"], Submitted("ep-task-1"), charge_accepted_work=False)
    canceled = await client.post(f"/v1/jobs/{waived['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    (attempt,) = canceled.json()["attempts"]
    assert attempt["upstream_cost"] == 10.0  # Everypixel bills an accepted task: 2.5 × 4
    assert canceled.json()["credits"]["charged"] == 0

    paid = await submit(client, "/v1/audio/speech", speech)
    await accepted(gw, paid["id"], Submitted("ep-task-2"))
    canceled = await client.post(f"/v1/jobs/{paid['id']}/cancel")
    assert canceled.json()["credits"]["charged"] == 10  # accepted work is charged by default
    usage = await client.get("/v1/usage", params={"job_id": paid["id"], "kind": "charge"})
    (charge,) = usage.json()["data"]
    assert charge["pricing"] == {"unit": "1k_chars", "quantity": "2.5", "rate": "4"}

    image = {"image": {"data": png_b64()}}
    perfect = await submit(
        client, "/v1/images/remove-background", {**image, "provider": "perfectcorp"}
    )
    await accepted(gw, perfect["id"], Submitted("pc-task-1"))
    assert (await client.post(f"/v1/jobs/{perfect['id']}/cancel")).status_code == 200
    perfect_job = (await client.get(f"/v1/jobs/{perfect['id']}")).json()
    assert perfect_job["attempts"][0]["upstream_cost"] == 0.0  # Perfect bills results only

    done = await submit(client, "/v1/images/remove-background", {**image, "provider": "pixelapi"})
    running = await accepted(gw, done["id"], Submitted("px-1", cost=4.0))
    assert running.lease is not None
    output = JobOutput(artifacts=[Artifact(id="art_x", url="", content_type="image/png", bytes=9)])
    finished = await lifecycle.succeed(running, running.lease, output)
    assert finished.record.job.credits.charged == 4

    failed = await submit(client, "/v1/images/upscale", {**image, "provider": "pixelapi"})
    running = await accepted(gw, failed["id"], Submitted("px-2", cost=20.0))
    assert running.lease is not None
    error = JobError(code=ErrorCode.upstream_failed, message="the upstream failed")
    end_attempt(
        running.record.job.attempts[-1], AttemptStatus.failed, ChargeReason.upstream_failed, error
    )
    await lifecycle.fail(running, running.lease, error)

    never = await submit(client, "/v1/images/remove-background", {**image, "provider": "imagepig"})
    assert (await client.post(f"/v1/jobs/{never['id']}/cancel")).status_code == 200

    response = await client.get(
        "/admin/reconcile",
        params={"since": since.isoformat()},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["jobs"] == 6
    by_provider = {p["provider"]: p for p in report["providers"]}
    assert by_provider["everypixel"] == {
        "provider": "everypixel",
        "tasks_submitted": 2,
        "upstream_spend": 20.0,
        "tenant_charges": 10,
        "unpaid_jobs": 1,
    }
    assert by_provider["perfectcorp"] == {
        "provider": "perfectcorp",
        "tasks_submitted": 1,
        "upstream_spend": 0.0,
        "tenant_charges": 50,
        "unpaid_jobs": 0,
    }
    assert by_provider["pixelapi"] == {
        "provider": "pixelapi",
        "tasks_submitted": 2,
        "upstream_spend": 24.0,
        "tenant_charges": 4,
        "unpaid_jobs": 1,
    }
    assert by_provider["imagepig"]["tasks_submitted"] == 0
    unpaid = {u["job_id"]: u for u in report["unpaid"]}
    assert set(unpaid) == {waived["id"], failed["id"]}
    assert unpaid[waived["id"]]["reason"] == "canceled_waived"
    assert unpaid[waived["id"]]["providers"] == ["everypixel"]
    assert unpaid[waived["id"]]["upstream_cost"] == 10.0
    assert unpaid[failed["id"]]["reason"] == "upstream_failed"
    assert report["unexplained"] == 0

    later = await client.get(
        "/admin/reconcile",
        params={"since": (datetime.now(UTC) + timedelta(seconds=5)).isoformat()},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert later.json()["jobs"] == 0 and later.json()["unpaid"] == []


async def test_reconcile_needs_the_admin_token_and_a_sane_window(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    _, client = gateway
    now = datetime.now(UTC)
    assert (
        await client.get("/admin/reconcile", params={"since": now.isoformat()})
    ).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN}"}
    missing = await client.get("/admin/reconcile", headers=admin)
    assert missing.status_code == 422
    assert missing.headers["content-type"].startswith("application/problem+json")
    backwards = await client.get(
        "/admin/reconcile",
        params={"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()},
        headers=admin,
    )
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["pointer"] == "/until"


async def test_a_window_of_naive_and_aware_times_reads_the_naive_one_as_utc(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    _, client = gateway
    admin = {"Authorization": f"Bearer {ADMIN}"}
    mixed = await client.get(
        "/admin/reconcile",
        params={"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00"},
        headers=admin,
    )
    assert mixed.status_code == 200, mixed.text
    report = mixed.json()
    assert (report["since"], report["until"]) == ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    naive_since = await client.get(
        "/admin/reconcile",
        params={"since": "2026-01-01T00:00:00", "until": "2026-01-02T00:00:00+01:00"},
        headers=admin,
    )
    assert naive_since.status_code == 200, naive_since.text
    assert naive_since.json()["since"] == "2026-01-01T00:00:00Z"
    backwards = await client.get(
        "/admin/reconcile",
        params={"since": "2026-01-01T12:00:00-01:00", "until": "2026-01-01T12:30:00"},
        headers=admin,
    )
    assert backwards.status_code == 422, backwards.text
    assert backwards.headers["content-type"] == "application/problem+json"
    assert backwards.json()["code"] == "invalid_parameter"
    assert backwards.json()["errors"][0]["pointer"] == "/until"


async def test_a_12_second_audio_file_is_reserved_by_its_seconds(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    _, client = gateway
    wav = base64.b64encode(av.wav_bytes(12.0)).decode()
    video = base64.b64encode(av.mp4_bytes(3.0)).decode()
    job = await submit(
        client,
        "/v1/videos/lipsync",
        {"video": {"data": video}, "audio": {"data": wav}, "provider": "everypixel"},
    )
    assert job["credits"] == {
        "reserved": 24,
        "charged": 0,
        "unit": "second",
        "rate": "2",
        "quantity": 12.0,
    }
    entries = (await client.get("/v1/usage", params={"job_id": job["id"]})).json()["data"]
    (reserve,) = [e for e in entries if e["kind"] == "reserve"]
    assert reserve["amount"] == 24
    assert reserve["pricing"] == {"unit": "second", "quantity": "12", "rate": "2"}


async def test_a_failed_task_counts_where_the_provider_bills_every_queued_task(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    """Everypixel bills "successful or accepted (queued) tasks": a task it accepted and then
    reported failed is paid for. PixelAPI's document says nothing of failed tasks: one that
    reports no cost of its own counts nothing once the upstream says it failed."""
    gw, client = gateway
    lifecycle = gw.jobs.runner.lifecycle
    error = JobError(code=ErrorCode.upstream_failed, message="the upstream failed")
    speech = {"text": "a" * 2500, "voice": "jack", "provider": "everypixel"}
    image = {"image": {"data": png_b64()}, "provider": "pixelapi"}
    costs = []
    for path, body, task in (
        ("/v1/audio/speech", speech, "ep-task-9"),
        ("/v1/images/remove-background", image, "px-9"),
    ):
        job = await submit(client, path, body)
        running = await accepted(gw, job["id"], Submitted(task))
        assert running.lease is not None
        end_attempt(
            running.record.job.attempts[-1],
            AttemptStatus.failed,
            ChargeReason.upstream_failed,
            error,
        )
        failed = await lifecycle.fail(running, running.lease, error)
        assert failed.record.job.credits.charged == 0
        (attempt,) = failed.record.job.attempts
        costs.append(attempt.upstream_cost)
    assert costs == [10.0, 0.0]  # Everypixel: 2.5 × 4; PixelAPI: nothing
