"""``POST /v1/providers/{name}/callbacks/{token}`` on an in-process app over a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.domain.models import JobStatus
from app.gateway import Gateway
from app.store import keys
from app.store.jobs import Schedule, now_ms
from tests.store.test_jobs import make_record
from tests.utils.in_process import BASE_URL, in_process_gateway

LATER_MS = 60_000
LIMIT = 64 * 1024


class App:
    def __init__(self, client: httpx.AsyncClient, gateway: Gateway, registry: CollectorRegistry):
        self.client, self.gateway, self.registry = client, gateway, registry

    def path(self, provider: str, job_id: str) -> str:
        token = self.gateway.upstream_callbacks.tokens.mint(provider, job_id)
        return f"/v1/providers/{provider}/callbacks/{token}"

    def counted(self, provider: str, outcome: str) -> float:
        labels = {"provider": provider, "outcome": outcome}
        return self.registry.get_sample_value("mediagate_upstream_callbacks_total", labels) or 0

    async def waiting_job(self, after_ms: int = LATER_MS) -> str:
        """A job an upstream is working on, next polled ``after_ms`` from now."""
        store = self.gateway.jobs.store
        record = make_record()
        record.plan = ["imagepipeline"]
        await store.create(record, price=0, slot_limit=1000)
        (claimed,) = await store.claim(1, 30)
        claimed.record.job.status = JobStatus.running
        await store.save(
            claimed, schedule=Schedule.due, due_ms=now_ms() + after_ms, lease=claimed.lease
        )
        return record.job.id


@pytest.fixture
async def app(redis_url: str, redis_client: Redis, tmp_path: Path) -> AsyncIterator[App]:
    registry = CollectorRegistry()
    async with in_process_gateway(
        redis_url, tmp_path, registry=registry, public_base_url=BASE_URL
    ) as (gateway, client):
        yield App(client, gateway, registry)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    return body


async def test_a_callback_makes_its_waiting_job_due_now(app: App, redis_client: Redis) -> None:
    job_id = await app.waiting_job()
    before = now_ms()
    response = await app.client.post(
        app.path("imagepipeline", job_id), json={"job_id": "ip_1", "status": "completed"}
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"received": True}
    score = await redis_client.zscore(keys.DUE, job_id)
    assert score is not None and before <= score <= now_ms()
    assert app.counted("imagepipeline", "expedited") == 1
    # what the body claimed changed nothing: the job waits for its status poll
    stored = await app.gateway.jobs.store.get(job_id)
    assert stored is not None and stored.record.job.status is JobStatus.running


async def test_a_finished_job_answers_202_and_stays_finished(app: App, redis_client: Redis) -> None:
    """Idempotent for the upstream (its retries stop), inert for the gateway."""
    store = app.gateway.jobs.store
    record = make_record()
    job_id = record.job.id
    await store.create(record, price=0, slot_limit=1000)
    (claimed,) = await store.claim(1, 30)
    claimed.record.job.status = JobStatus.succeeded
    await store.save(claimed, schedule=Schedule.release, lease=claimed.lease)
    for _ in range(2):
        response = await app.client.post(app.path("everypixel", job_id), json={})
        assert response.status_code == 202, response.text
    assert await redis_client.zscore(keys.DUE, job_id) is None
    assert app.counted("everypixel", "ignored") == 2


async def test_bad_tokens_are_404_and_say_nothing_of_the_job(app: App, redis_client: Redis) -> None:
    job_id = await app.waiting_job()
    due = await redis_client.zscore(keys.DUE, job_id)
    good = app.path("imagepipeline", job_id)
    mac = good.rpartition(".")[2]
    tampered = good[: -len(mac)] + ("A" if mac[0] != "A" else "B") + mac[1:]
    unknown_job = good.replace(job_id, "job_000000000000ffffffffffffffff")
    paths = [
        tampered,
        unknown_job,
        good.replace("/imagepipeline/", "/everypixel/"),  # another provider's route
        app.path("pixelapi", job_id),  # a provider that takes no callbacks
        good.replace("/imagepipeline/", "/nosuchprovider/"),
        f"/v1/providers/imagepipeline/callbacks/{job_id}",
        "/v1/providers/imagepipeline/callbacks/garbage",
    ]
    details = set()
    for path in paths:
        body = assert_problem(await app.client.post(path, json={}), 404, "not_found")
        details.add((body["title"], body["detail"]))
        assert body["errors"][0]["pointer"] == "/path/token"
    assert len(details) == 1, details
    assert await redis_client.zscore(keys.DUE, job_id) == due
    assert app.counted("imagepipeline", "rejected") == 4
    assert app.counted("everypixel", "rejected") == 1
    assert app.counted("other", "rejected") == 2


async def test_an_oversized_body_is_413_and_changes_nothing(app: App, redis_client: Redis) -> None:
    job_id = await app.waiting_job()
    due = await redis_client.zscore(keys.DUE, job_id)
    path = app.path("imagepipeline", job_id)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(LIMIT // 1024 + 1):
            yield b"x" * 1024

    for content in (b"x" * (LIMIT + 1), chunked()):
        response = await app.client.post(path, content=content)
        body = assert_problem(response, 413, "payload_too_large")
        assert body["errors"][0]["pointer"] == ""  # the body as a whole
    assert await redis_client.zscore(keys.DUE, job_id) == due
    assert app.counted("imagepipeline", "too_large") == 2
    response = await app.client.post(path, content=b"x" * LIMIT)
    assert response.status_code == 202, response.text
    assert app.counted("imagepipeline", "expedited") == 1
