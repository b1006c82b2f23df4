"""The result cache end to end: the same work asked twice runs upstream once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.clients import admin_client, new_tenant
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway
from tests.utils.sandbox import CONTROL

pytestmark = pytest.mark.e2e

WAIT_S = 120.0


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    data_dir: Path = tmp_path_factory.mktemp("result-cache")
    with gateway(with_db(redis_url, 9), data_dir, MEDIAGATE_RESULT_CACHE_TTL_S="3600") as proc:
        yield proc


async def submissions(client: httpx.AsyncClient, provider: str) -> int:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return int(stats.get(provider, {}).get("submissions", 0))


async def keywords(
    client: httpx.AsyncClient, image: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    created = await client.post(
        "/v1/analysis/image-keywords",
        json={"image": {"data": image}, "num_keywords": 5, "provider": "everypixel"},
        headers=headers or {},
    )
    assert created.status_code in (200, 202), created.text
    job: dict[str, Any] = created.json()
    if job["status"] in ("succeeded", "failed", "canceled"):
        assert created.status_code == 200  # answered at once
        return job
    return (await wait_all_terminal(client, [job["id"]], timeout_s=WAIT_S))[job["id"]]


async def test_the_same_request_twice_runs_upstream_once(client: httpx.AsyncClient) -> None:
    image = png_b64(40, 40, (10, 200, 30))
    before = await submissions(client, "everypixel")
    first = await keywords(client, image)
    assert first["status"] == "succeeded" and first["cache"] == "miss"
    second = await keywords(client, image)

    assert second["status"] == "succeeded" and second["cache"] == "hit"
    assert second["id"] != first["id"]
    assert second["output"]["data"] == first["output"]["data"]
    assert second["attempts"] == []  # no upstream call
    assert second["credits"]["charged"] == 0  # hits are free by default
    assert await submissions(client, "everypixel") == before + 1
    usage = (await client.get("/v1/usage", params={"job_id": second["id"]})).json()["data"]
    assert any("from the result cache" in (entry["reason"] or "") for entry in usage), usage


async def test_other_bytes_and_no_cache_are_misses(client: httpx.AsyncClient) -> None:
    image = png_b64(40, 40, (200, 10, 30))
    before = await submissions(client, "everypixel")
    await keywords(client, image)
    other = await keywords(client, png_b64(40, 40, (200, 10, 31)))
    assert other["cache"] == "miss"
    fresh = await keywords(client, image, headers={"Cache-Control": "no-cache"})
    assert fresh["cache"] == "miss" and fresh["attempts"]
    assert await submissions(client, "everypixel") == before + 3


async def test_entries_are_never_shared_between_tenants(
    client: httpx.AsyncClient, live_gateway: Process
) -> None:
    image = png_b64(40, 40, (5, 5, 250))
    await keywords(client, image)
    async with admin_client(live_gateway) as admin:
        tenant, key = await new_tenant(admin, "other", credits=1000)
    assert tenant["result_cache_ttl_s"] is None  # the gateway's window applies
    async with httpx.AsyncClient(
        base_url=live_gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as other:
        theirs = await keywords(other, image)
    assert theirs["cache"] == "miss" and theirs["attempts"]


async def test_generation_without_a_seed_is_not_cached_unless_asked(
    client: httpx.AsyncClient,
) -> None:
    body = {"prompt": "a lighthouse at dusk", "provider": "imagepig"}
    first = await client.post("/v1/images/generate", json=body, headers={"Prefer": "wait=30"})
    assert first.status_code == 200, first.text
    assert first.json()["cache"] is None
    asked = {"Prefer": "wait=30", "Cache-Control": "max-age=600"}
    one = (await client.post("/v1/images/generate", json=body, headers=asked)).json()
    two = (await client.post("/v1/images/generate", json=body, headers=asked)).json()
    assert one["cache"] == "miss" and two["cache"] == "hit"
    assert two["output"]["artifacts"][0]["id"] == one["output"]["artifacts"][0]["id"]
    artifact = await client.get(two["output"]["artifacts"][0]["url"])
    assert artifact.status_code == 200 and artifact.content
