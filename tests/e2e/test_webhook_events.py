"""Webhook event filters: a callback URL gets the events its job (or its tenant) chose, and
nothing else. A batch's callback URL gets one ``batch.completed``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils.deadlines import REQUEST_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import ADMIN_TOKEN, Process, gateway
from tests.utils.receivers import Receiver, receiving

pytestmark = pytest.mark.e2e

WAIT_S = 120.0


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    data_dir: Path = tmp_path_factory.mktemp("webhook-events")
    with gateway(
        with_db(redis_url, 8),
        data_dir,
        MEDIAGATE_URL_ALLOWLIST='["127.0.0.1/32"]',
        MEDIAGATE_SANDBOX_JOB_S="1.5",
        MEDIAGATE_PROVIDERS__EVERYPIXEL__POLL_INTERVAL_S="0.1",
        MEDIAGATE_PROVIDERS__IMAGEPIPELINE__POLL_INTERVAL_S="0.1",
    ) as proc:
        yield proc


async def speech(client: httpx.AsyncClient, url: str, events: list[str] | None) -> str:
    """An asynchronous Everypixel job."""
    body: dict[str, object] = {"text": "Hello there.", "voice": "jack", "callback_url": url}
    if events is not None:
        body["webhook_events"] = events
    created = await client.post("/v1/audio/speech", json=body)
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


async def settle(client: httpx.AsyncClient, job_id: str, receiver: Receiver, ends: int) -> None:
    """Wait for the job's end, then for ``ends`` terminal deliveries, then a little more so an
    event that should not come has had the time to come."""
    await wait_all_terminal(client, [job_id], timeout_s=WAIT_S)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while sum(1 for e in receiver.events() if e["type"] == "job.succeeded") < ends:
        assert loop.time() < deadline, receiver.events()
        await asyncio.sleep(0.1)
    deliveries = (await client.get(f"/v1/jobs/{job_id}/deliveries")).json()["data"]
    while len(deliveries) < len(receiver.requests):  # every POST is in the log
        await asyncio.sleep(0.1)
        deliveries = (await client.get(f"/v1/jobs/{job_id}/deliveries")).json()["data"]
    await asyncio.sleep(1.0)


async def test_a_receiver_subscribed_to_succeeded_only_gets_exactly_that(
    client: httpx.AsyncClient,
) -> None:
    async with receiving() as receiver:
        job_id = await speech(client, receiver.url, ["job.succeeded"])
        await settle(client, job_id, receiver, ends=1)
    events = receiver.events()
    assert [e["type"] for e in events] == ["job.succeeded"]
    assert events[0]["data"]["id"] == job_id and events[0]["data"]["status"] == "succeeded"


async def test_started_progress_and_the_end_each_arrive_as_chosen(
    client: httpx.AsyncClient,
) -> None:
    """ImagePipeline reports its jobs' progress while they run."""
    async with receiving() as receiver:
        chosen = ["job.started", "job.progress", "job.succeeded"]
        created = await client.post(
            "/v1/images/lock-identity",
            json={
                "face": {"data": png_b64(64, 64)},
                "prompt": "a portrait in a garden",
                "provider": "imagepipeline",
                "callback_url": receiver.url,
                "webhook_events": chosen,
            },
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        await settle(client, job_id, receiver, ends=1)
    kinds = Counter(e["type"] for e in receiver.events())
    assert set(kinds) == set(chosen), kinds
    assert kinds["job.started"] == 1 and kinds["job.succeeded"] == 1
    ids = [headers["webhook-id"] for headers, _ in receiver.requests]
    assert len(ids) == len(set(ids))  # each message its own id
    deliveries = (await client.get(f"/v1/jobs/{job_id}/deliveries")).json()["data"]
    assert Counter(d["event"] for d in deliveries) == kinds


async def test_a_tenants_default_applies_to_jobs_that_do_not_choose(
    client: httpx.AsyncClient, live_gateway: Process
) -> None:
    async with httpx.AsyncClient(
        base_url=live_gateway.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=REQUEST_S,
    ) as admin:
        patched = await admin.patch(
            "/admin/tenants/sandbox", json={"webhook_events": ["job.started", "job.succeeded"]}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["webhook_events"] == ["job.started", "job.succeeded"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while (await client.get("/v1/account")).json()["webhook_events"] != [
            "job.started",
            "job.succeeded",
        ]:  # every process has heard of the change
            assert loop.time() < deadline
            await asyncio.sleep(0.1)
        try:
            async with receiving() as receiver:
                job_id = await speech(client, receiver.url, None)
                await settle(client, job_id, receiver, ends=1)
        finally:
            await admin.patch("/admin/tenants/sandbox", json={"webhook_events": ["job.succeeded"]})
    assert Counter(e["type"] for e in receiver.events()) == {"job.started": 1, "job.succeeded": 1}


async def test_events_without_a_callback_url_or_unknown_are_refused(
    client: httpx.AsyncClient,
) -> None:
    for body, pointer in (
        ({"webhook_events": ["job.succeeded"]}, "/webhook_events"),
        ({"webhook_events": ["job.exploded"], "callback_url": "https://example.com/h"}, None),
        ({"webhook_events": [], "callback_url": "https://example.com/h"}, "/webhook_events"),
    ):
        answer = await client.post(
            "/v1/images/remove-background", json={"image": {"data": png_b64()}, **body}
        )
        assert answer.status_code == 422, answer.text
        if pointer is not None:
            assert answer.json()["errors"][0]["pointer"] == pointer
        else:
            assert answer.json()["errors"][0]["pointer"].startswith("/webhook_events")
