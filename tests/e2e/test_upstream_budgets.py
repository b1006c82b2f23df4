"""Upstream budgets end to end: a burst far above Everypixel's documented rate is queued by the
gateway, never refused by the (emulated) upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import SANDBOX_KEY
from tests.utils.deadlines import LOAD_S, REQUEST_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway
from tests.utils.sandbox import CONTROL

pytestmark = pytest.mark.e2e

JOBS = 300
CONNECTIONS = 64


@pytest.fixture(scope="module")
def busy_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    data_dir: Path = tmp_path_factory.mktemp("budgets")
    with gateway(
        with_db(redis_url, 5),
        data_dir,
        MEDIAGATE_TENANT_MAX_CONCURRENT_JOBS="1000",
        MEDIAGATE_TENANT_RATE_LIMIT_RPM="100000",
    ) as proc:
        yield proc


async def test_300_keyword_jobs_at_once_all_succeed_without_exceeding_30_rps(
    busy_gateway: Process,
) -> None:
    async with httpx.AsyncClient(
        base_url=busy_gateway.url,
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        timeout=httpx.Timeout(REQUEST_S, pool=None),
        limits=httpx.Limits(max_connections=CONNECTIONS),
    ) as client:
        await client.delete("/_sandbox/faults", headers=CONTROL)
        image = png_b64()
        # as many at once as there are connections (the gateway sees the same burst), so
        # httpx's pool does not rescan a queue of the other waiting requests on every answer
        gate = asyncio.Semaphore(CONNECTIONS)

        async def submit(i: int) -> str:
            async with gate:
                response = await client.post(
                    "/v1/analysis/image-keywords",
                    json={"image": {"data": image}, "num_keywords": 10, "metadata": {"i": i}},
                )
            assert response.status_code == 202, response.text
            return str(response.json()["id"])

        ids = await asyncio.gather(*(submit(i) for i in range(JOBS)))

        jobs = await wait_all_terminal(client, ids, timeout_s=LOAD_S)

        assert [j["status"] for j in jobs.values()].count("succeeded") == JOBS, [
            j["error"] for j in jobs.values() if j["status"] != "succeeded"
        ][:3]
        assert all(len(j["attempts"]) == 1 for j in jobs.values())  # none met a 502
        assert all(j["output"]["data"]["keywords"] for j in jobs.values())
        stats = (await client.get("/_sandbox/stats", headers=CONTROL)).json()["everypixel"]
        assert stats["over_limit"] == 0
        assert stats["submissions"] == JOBS
