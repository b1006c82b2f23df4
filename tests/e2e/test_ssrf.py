"""SSRF probes through a live gateway: refused with 422 unsafe_url, no connection attempted,
nothing stored or charged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], accepted
    server.close()
    await server.wait_closed()


async def test_ssrf_probes_are_refused_without_a_connection(
    client: httpx.AsyncClient, listener: tuple[int, list[int]]
) -> None:
    port, accepted = listener
    before = (await client.get("/v1/account")).json()
    probes = [
        f"http://127.0.0.1:{port}/a.png",
        f"http://[::1]:{port}/a.png",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/a.png",
        f"http://localhost:{port}/a.png",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
    ]
    for url in probes:
        response = await client.post("/v1/images/remove-background", json={"image": {"url": url}})
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "unsafe_url", url
        assert problem["errors"][0]["pointer"] == "/image/url"
    await asyncio.sleep(0.2)
    assert accepted == []
    jobs = (await client.get("/v1/jobs", params={"operation": "image.remove_background"})).json()
    assert not any(j["input"].get("image", {}).get("url") in probes for j in jobs["data"])
    after = (await client.get("/v1/account")).json()
    assert (after["balance"], after["reserved"]) == (before["balance"], before["reserved"])
