"""Upstream budgets end to end: a burst far above Everypixel's documented rate is queued by the
gateway, never refused by the (emulated) upstream.

The emulators run in a process of their own, as a provider runs on machines of its own: they
date each request when they read it, and mounted in the gateway they would read it on the
gateway's event loop, late by whatever that loop was busy with (the burst's 64 submissions
decoded and stored at once), and so count the gateway's own stalls as its bursts. Apart, what
they judge is when the gateway's requests reach them.

Apart, they still date a request when their own process gets to read it: on a machine short of
CPU (a suite's other workers, a valgrind beside it) a sandbox that waits its turn to run reads
the requests sent meanwhile all at once, and dates them together (beside CPU hogs, up to 0.4 s
late). So the sandbox runs at a higher CPU priority where the tests may raise one
(``start_sandbox``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import SANDBOX_KEY
from tests.utils.clients import load_limits
from tests.utils.deadlines import LOAD_S, REQUEST_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway, start_sandbox
from tests.utils.sandbox import CONTROL

pytestmark = pytest.mark.e2e

JOBS = 300
CONNECTIONS = 64


@pytest.fixture(scope="module")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = start_sandbox(tmp_path_factory.mktemp("budgets-sandbox"))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def busy_gateway(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, emulators: Process
) -> Iterator[Process]:
    data_dir: Path = tmp_path_factory.mktemp("budgets")
    with gateway(
        with_db(redis_url, 5),
        data_dir,
        MEDIAGATE_SANDBOX_URL=emulators.url,
        MEDIAGATE_TENANT_MAX_CONCURRENT_JOBS="1000",
        MEDIAGATE_TENANT_RATE_LIMIT_RPM="100000",
    ) as proc:
        yield proc


async def test_300_keyword_jobs_at_once_all_succeed_without_exceeding_30_rps(
    busy_gateway: Process, emulators: Process
) -> None:
    async with httpx.AsyncClient(
        base_url=busy_gateway.url,
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        timeout=httpx.Timeout(REQUEST_S, pool=None),
        limits=load_limits(CONNECTIONS),
    ) as client:
        await client.delete(f"{emulators.url}/_sandbox/faults", headers=CONTROL)
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
        retried = [j["attempts"] for j in jobs.values() if len(j["attempts"]) != 1]
        assert not retried, retried[:2]  # none met a 502
        assert all(j["output"]["data"]["keywords"] for j in jobs.values())
        stats = (await client.get(f"{emulators.url}/_sandbox/stats", headers=CONTROL)).json()
        stats = stats["everypixel"]
        assert stats["over_limit"] == 0
        assert stats["submissions"] == JOBS
