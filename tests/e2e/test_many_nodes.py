"""Many nodes, no shared disk: two gateways and two workers, each with its own data directory,
sharing only Redis and the object store (SeaweedFS), in front of one separate sandbox.

A file uploaded at gateway B feeds jobs created at gateway A; the first worker submits every
job upstream and is killed with ``kill -9``; the second, started then, resumes them by polling
(none submitted twice); every artifact is downloaded, whole and by range, from gateway B.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from tests.e2e.conftest import SANDBOX_KEY
from tests.e2e.test_crash_under_load import in_flight_upstream
from tests.utils.deadlines import IN_FLIGHT_S, LOAD_S, REQUEST_S
from tests.utils.jobs import TERMINAL, wait_all_terminal
from tests.utils.media import decode_image, png_b64, png_bytes
from tests.utils.net import with_db
from tests.utils.processes import ADMIN_TOKEN, Process, gateway, start_sandbox, start_worker
from tests.utils.seaweedfs import S3Server, s3_client

pytestmark = [pytest.mark.e2e, pytest.mark.long]

ASYNC_JOBS = 24
"""PixelAPI jobs, running upstream when the first worker dies."""
SYNC_JOBS = 6
"""Image Pig jobs, answered by the upstream at once."""
JOB_S = IN_FLIGHT_S
PREFIX = "many-nodes"


async def wait_in_flight(client: httpx.AsyncClient, ids: list[str]) -> None:
    """Until every job is submitted upstream (or finished, for the synchronous ones)."""
    deadline = time.monotonic() + LOAD_S
    pending = list(ids)
    while pending:
        # in order, a round stopping at the first job not there yet (a job once submitted
        # upstream stays so): the test's reads do not load the gateways they watch
        job = (await client.get(f"/v1/jobs/{pending[0]}")).json()
        if job["status"] in TERMINAL or in_flight_upstream(job):
            assert job["status"] != "failed", job
            pending.pop(0)
            continue
        assert time.monotonic() < deadline, f"{len(pending)} not in flight yet: {job}"
        await asyncio.sleep(0.3)


def two_gateways(
    nodes: ExitStack, redis_url: str, env: dict[str, str], *dirs: Path
) -> list[Process]:
    """Both gateways started at once (each waits for its own to listen), stopped by ``nodes``."""
    with ThreadPoolExecutor(len(dirs)) as pool:
        return list(pool.map(lambda d: nodes.enter_context(gateway(redis_url, d, **env)), dirs))


def on(base_url: str, signed_url: str) -> str:
    """The same signed path and query, asked of another gateway."""
    parts = urlsplit(signed_url)
    return f"{base_url}{parts.path}?{parts.query}"


async def test_two_gateways_two_workers_share_only_redis_and_the_object_store(
    redis_url: str, s3_server: S3Server, tmp_path: Path
) -> None:
    url = with_db(redis_url, 14)
    redis.Redis.from_url(url).flushdb()
    shared = s3_server.env(prefix=PREFIX)
    sandbox = start_sandbox(tmp_path / "sandbox", MEDIAGATE_SANDBOX_JOB_S=str(JOB_S))
    node = {
        "MEDIAGATE_SANDBOX_URL": sandbox.url,
        "MEDIAGATE_SANDBOX_JOB_S": str(JOB_S),
        "MEDIAGATE_RUN_WORKER": "false",
        "MEDIAGATE_LEASE_S": "3",
        "MEDIAGATE_WORKER_METRICS_PORT": "0",
        **shared,
    }
    dirs = {name: tmp_path / name for name in ("gw-a", "gw-b", "worker-1", "worker-2")}
    for directory in dirs.values():
        directory.mkdir()
    workers: list[Process] = []
    try:
        with ExitStack() as nodes:
            gw_a, gw_b = two_gateways(nodes, url, node, dirs["gw-a"], dirs["gw-b"])
            auth = {"Authorization": f"Bearer {SANDBOX_KEY}"}
            async with (
                httpx.AsyncClient(base_url=gw_a.url, headers=auth, timeout=REQUEST_S) as a,
                httpx.AsyncClient(base_url=gw_b.url, headers=auth, timeout=REQUEST_S) as b,
                httpx.AsyncClient(
                    base_url=sandbox.url,
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},  # its controls
                    timeout=REQUEST_S,
                ) as emulators,
            ):
                cleared = await emulators.delete("/_sandbox/faults")  # counters at 0
                assert cleared.status_code == 204
                uploaded = await b.post(
                    "/v1/files", files={"file": ("in.png", png_bytes(36, 24), "image/png")}
                )
                assert uploaded.status_code == 201, uploaded.text
                file_id = uploaded.json()["id"]

                async def create(body: dict[str, Any]) -> str:
                    created = await a.post("/v1/images/remove-background", json=body)
                    assert created.status_code == 202, created.text
                    return str(created.json()["id"])

                by_upload = {"image": {"file_id": file_id}, "fallback": False}
                inline = {"image": {"data": png_b64(28, 20)}, "fallback": False}
                ids = await asyncio.gather(
                    *(create(by_upload | {"provider": "pixelapi"}) for _ in range(ASYNC_JOBS)),
                    *(create(inline | {"provider": "imagepig"}) for _ in range(SYNC_JOBS)),
                )

                workers.append(start_worker(url, dirs["worker-1"], gw_a.url, **node))
                await wait_in_flight(b, ids)
                workers.append(start_worker(url, dirs["worker-2"], gw_b.url, **node))
                workers[0].kill()

                done = await wait_all_terminal(b, ids, LOAD_S)
                failed = {i: j["error"] for i, j in done.items() if j["status"] != "succeeded"}
                assert failed == {}
                assert all(len(j["attempts"]) == 1 for j in done.values())
                stats = (await emulators.get("/_sandbox/stats")).json()
                assert stats["pixelapi"]["submissions"] == ASYNC_JOBS  # resumed, not resubmitted
                assert stats["imagepig"]["submissions"] == SYNC_JOBS

                for job_id, job in done.items():
                    (artifact,) = job["output"]["artifacts"]
                    got = await b.get(on(gw_b.url, artifact["url"]), headers={"Authorization": ""})
                    assert got.status_code == 200, (job_id, got.text)
                    image = decode_image(got.content)
                    assert image.format == "PNG"
                    assert image.size == ((36, 24) if job["provider"] == "pixelapi" else (28, 20))
                    head = await b.get(
                        on(gw_b.url, artifact["url"]),
                        headers={"Authorization": "", "Range": "bytes=0-3"},
                    )
                    assert (head.status_code, head.content) == (206, b"\x89PNG")

                bucket = s3_client(s3_server, prefix=PREFIX)
                assert await bucket.get(file_id) == png_bytes(36, 24)
                for directory in dirs.values():
                    assert not (directory / "blobs").exists() or not any(
                        p.is_file() for p in (directory / "blobs").rglob("*")
                    ), f"{directory.name} kept blobs on its own disk"
    finally:
        for worker in workers:
            worker.stop()
        sandbox.stop()
