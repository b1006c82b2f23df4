"""Fault injection through the sandbox: fallback, one charge, and the circuit breaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import SANDBOX_KEY
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def faulty_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    data_dir: Path = tmp_path_factory.mktemp("faults")
    with gateway(
        with_db(redis_url, 4),
        data_dir,
        MEDIAGATE_CIRCUIT__MIN_REQUESTS="4",
        MEDIAGATE_CIRCUIT__FAILURE_RATIO="0.5",
        MEDIAGATE_CIRCUIT__OPEN_S="1.5",
    ) as proc:
        yield proc


@pytest.fixture
async def client(faulty_gateway: Process) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=faulty_gateway.url,
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        timeout=30,
    ) as c:
        await c.delete("/_sandbox/faults")
        yield c


async def pixelapi_requests(client: httpx.AsyncClient) -> int:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats")).json()
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
        "/_sandbox/faults", json={"provider": "pixelapi", "fault": "http_500", "count": None}
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

    # PixelAPI recovers; after open_s one probe goes through and closes the circuit.
    await client.delete("/_sandbox/faults")
    await asyncio.sleep(1.6)
    probe = await remove_background(client)
    assert probe["status"] == "succeeded"
    assert [a["provider"] for a in probe["attempts"]] == ["pixelapi"]
    assert await circuit(client, "pixelapi") == "closed"
    assert await pixelapi_requests(client) > 0
