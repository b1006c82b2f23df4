"""Fault injection through the sandbox and the network: fallback with one charge, the circuit
breaker, and webhooks to a receiver that is down at first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import SANDBOX_KEY
from tests.utils.deadlines import JOB_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import ADMIN_TOKEN, Process, gateway
from tests.utils.receivers import Receiver
from tests.utils.sandbox import CONTROL

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def faulty_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    data_dir: Path = tmp_path_factory.mktemp("faults")
    with gateway(
        with_db(redis_url, 4),
        data_dir,
        MEDIAGATE_CIRCUIT__MIN_REQUESTS="4",
        MEDIAGATE_CIRCUIT__FAILURE_RATIO="0.5",
        MEDIAGATE_CIRCUIT__OPEN_S="4",
        MEDIAGATE_URL_ALLOWLIST='["127.0.0.1/32"]',
        MEDIAGATE_WEBHOOK_RETRY_SCHEDULE_S="[0, 0.2, 0.3, 0.4, 0.5]",
        MEDIAGATE_JOB_DEADLINES='{"image.restore_face": 0.000001, "image.upscale": 1.5}',
    ) as proc:
        yield proc


@pytest.fixture
async def client(faulty_gateway: Process) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=faulty_gateway.url,
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        timeout=30,
    ) as c:
        await c.delete("/_sandbox/faults", headers=CONTROL)
        yield c


async def pixelapi_requests(client: httpx.AsyncClient) -> int:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return int(stats.get("pixelapi", {}).get("requests", 0))


async def circuit(client: httpx.AsyncClient, provider: str) -> str:
    providers = (await client.get("/v1/providers")).json()["data"]
    return str(next(p["circuit"] for p in providers if p["name"] == provider))


async def remove_background(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64()}, "provider": "pixelapi", "fallback": ["imagepig"]},
        headers={"Prefer": "wait=30"},
    )
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def test_pixelapi_down_falls_back_then_the_breaker_opens_and_a_probe_closes_it(
    client: httpx.AsyncClient,
) -> None:
    await client.post(
        "/_sandbox/faults",
        json={"provider": "pixelapi", "fault": "http_500", "count": None},
        headers=CONTROL,
    )
    prices = {
        p["name"]: p["price"]
        for op in (await client.get("/v1/operations")).json()["data"]
        if op["name"] == "image.remove_background"
        for p in op["providers"]
    }
    balance_before = (await client.get("/v1/account")).json()["balance"]

    # While the circuit is closed each job tries PixelAPI (retrying it is pointless once it
    # answers 500: the job moves on) and succeeds at Image Pig, charged once, at Image Pig.
    jobs = [await remove_background(client) for _ in range(4)]
    for job in jobs:
        assert job["status"] == "succeeded", job
        assert [a["provider"] for a in job["attempts"]] == ["pixelapi", "imagepig"]
        assert job["attempts"][0]["error"]["code"] == "provider_unavailable"
        assert job["credits"]["charged"] == prices["imagepig"]
    balance_after = (await client.get("/v1/account")).json()["balance"]
    assert balance_before - balance_after == 4 * prices["imagepig"]
    metrics = (await client.get("/metrics")).text
    assert (
        'mediagate_fallbacks_total{from="pixelapi",operation="image.remove_background",'
        'to="imagepig"} 4.0'
    ) in metrics

    # 4 failures of 4 calls: the circuit is open and PixelAPI hears nothing more.
    assert await circuit(client, "pixelapi") == "open"
    assert 'mediagate_circuit_state{provider="pixelapi"} 2.0' in (await client.get("/metrics")).text
    seen = await pixelapi_requests(client)
    for _ in range(5):
        job = await remove_background(client)
        assert job["status"] == "succeeded"
        assert job["provider"] == "imagepig"
        assert "circuit" in job["attempts"][0]["error"]["message"]
    assert await pixelapi_requests(client) == seen

    # PixelAPI recovers; after open_s (4 s) one probe goes through and closes the circuit.
    await client.delete("/_sandbox/faults", headers=CONTROL)
    await asyncio.sleep(4.1)
    probe = await remove_background(client)
    assert probe["status"] == "succeeded"
    assert [a["provider"] for a in probe["attempts"]] == ["pixelapi"]
    assert await circuit(client, "pixelapi") == "closed"
    assert await pixelapi_requests(client) > 0


async def test_a_receiver_down_for_three_attempts_gets_the_fourth_signed(
    client: httpx.AsyncClient,
) -> None:
    receiver = Receiver(down_for=3)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        response = await client.post(
            "/v1/images/remove-background",
            json={
                "image": {"data": png_b64()},
                "callback_url": f"http://127.0.0.1:{port}/hooks/mediagate",
            },
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        deadline = asyncio.get_running_loop().time() + JOB_S
        while len(receiver.requests) < 4:
            assert asyncio.get_running_loop().time() < deadline, receiver.requests
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # nothing more comes after the delivery
        assert len(receiver.requests) == 4
    finally:
        server.close()
        await server.wait_closed()

    secret = (
        await client.get(
            "/admin/tenants/sandbox/webhook-secret",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    ).json()["secret"]
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    assert len(ids) == 1  # one event, retried: receivers de-duplicate on it
    headers, body = receiver.requests[-1]
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "job.succeeded"
    assert event["data"]["id"] == job_id and event["data"]["status"] == "succeeded"
    tampered = body.replace(b"succeeded", b"failed")
    with pytest.raises(Exception, match="(?i)signature"):
        Webhook(secret).verify(tampered, headers)

    deliveries = (await client.get(f"/v1/jobs/{job_id}/deliveries")).json()["data"]
    assert [d["status_code"] for d in deliveries] == [503, 503, 503, 200]
    assert [d["attempt"] for d in deliveries] == [1, 2, 3, 4]
    assert all(d["next_attempt_at"] for d in deliveries[:3])
    assert deliveries[-1]["next_attempt_at"] is None


async def test_a_callback_url_inside_the_network_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64()}, "callback_url": "http://10.0.0.1/hook"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "unsafe_url"
    assert response.json()["errors"][0]["pointer"] == "/callback_url"


async def test_a_job_past_its_deadline_fails_with_upstream_timeout_and_is_refunded(
    client: httpx.AsyncClient,
) -> None:
    """Past its deadline before any upstream accepted it: nothing was paid, nothing charged."""
    before = (await client.get("/v1/account")).json()
    response = await client.post(
        "/v1/images/restore-face",
        json={"image": {"data": png_b64()}},
        headers={"Prefer": "wait=10"},
    )
    job = response.json()
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "upstream_timeout"
    assert "1e-06 s" in job["error"]["message"]
    assert job["credits"]["charged"] == 0
    assert all(a["provider_job_id"] is None for a in job["attempts"]), job
    assert all(a["charge_reason"] == "not_accepted" for a in job["attempts"]), job
    after = (await client.get("/v1/account")).json()
    assert (after["balance"], after["reserved"]) == (before["balance"], before["reserved"])


async def test_a_job_past_its_deadline_after_the_upstream_accepted_it_is_charged(
    client: httpx.AsyncClient,
) -> None:
    """The upstream's task runs on (its status never ends here): the provider bills for it,
    so the job is charged its price (the default policy) and says why."""
    await client.post(
        "/_sandbox/faults",
        json={"provider": "pixelapi", "fault": "unknown_status", "count": None, "on": "poll"},
        headers=CONTROL,
    )
    before = (await client.get("/v1/account")).json()
    response = await client.post(
        "/v1/images/upscale",
        json={"image": {"data": png_b64()}, "provider": "pixelapi", "fallback": False},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    job = (await wait_all_terminal(client, [job_id], JOB_S, every_s=0.2))[job_id]
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "upstream_timeout"
    (attempt,) = job["attempts"]
    assert attempt["provider_job_id"] is not None
    assert attempt["charge_reason"] == "deadline_after_accept"
    assert job["credits"]["charged"] == job["credits"]["reserved"] > 0
    after = (await client.get("/v1/account")).json()
    assert after["balance"] == before["balance"] - job["credits"]["charged"]
    assert after["reserved"] == before["reserved"]
