"""Redis stopped and restarted under load: the API answers 503 at once while it is away,
and every job it accepted before or after finishes — none is lost (Redis runs with AOF)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.store.embedded import redis_server_binary
from tests.e2e.conftest import SANDBOX_KEY
from tests.utils.deadlines import LOAD_S, REQUEST_S, STARTUP_S, scaled
from tests.utils.media import png_b64
from tests.utils.net import free_port
from tests.utils.processes import gateway

pytestmark = [pytest.mark.e2e, pytest.mark.long]

STORE_TIMEOUT_S = 5.0
"""The gateway's Redis timeout here: the production default, the bound on a refusal."""


class RedisProcess:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    server.workdir.mkdir()
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


async def test_redis_restarted_under_load_loses_no_accepted_job(
    own_redis: RedisProcess, tmp_path: Path
) -> None:
    (tmp_path / "gw").mkdir()
    with gateway(
        own_redis.url,
        tmp_path / "gw",
        MEDIAGATE_SANDBOX_JOB_S="0.5",
        MEDIAGATE_REDIS_TIMEOUT_S=str(STORE_TIMEOUT_S),
    ) as proc:
        async with httpx.AsyncClient(
            base_url=proc.url,
            headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
            timeout=REQUEST_S,
        ) as client:
            accepted: list[str] = []
            refused: list[float] = []
            stop = asyncio.Event()
            image = png_b64()

            async def load() -> None:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        response = await client.post(
                            "/v1/images/remove-background",
                            json={"image": {"data": image}},
                        )
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
                        continue
                    if response.status_code == 202:
                        accepted.append(response.json()["id"])
                    else:
                        assert response.status_code == 503, response.text
                        assert response.json()["code"] == "store_unavailable"
                        refused.append(time.monotonic() - started)
                    await asyncio.sleep(0.02)

            async def until(what: str, done: Callable[[], bool]) -> None:
                """Until the load has done ``what``, however slowly the machine runs it."""
                deadline = time.monotonic() + LOAD_S
                while not done():
                    assert time.monotonic() < deadline, f"never {what}"
                    await asyncio.sleep(0.05)

            workers = [asyncio.create_task(load()) for _ in range(4)]
            await until("accepted 5 jobs", lambda: len(accepted) >= 5)
            own_redis.kill()
            await until("saw the outage", lambda: bool(refused))
            await asyncio.sleep(1.0)  # the outage goes on under load
            own_redis.start()
            before = len(accepted)
            await until("accepted 5 jobs after the restart", lambda: len(accepted) >= before + 5)
            stop.set()
            await asyncio.gather(*workers)

            # refused at once, not hung: within the store timeout (plus a busy machine's delay)
            assert max(refused) < STORE_TIMEOUT_S + scaled(10), "a request hung past it"
            deadline = time.monotonic() + LOAD_S
            pending = set(accepted)
            jobs: dict[str, dict[str, Any]] = {}
            while pending:
                assert time.monotonic() < deadline, f"{len(pending)} jobs never finished"
                for job_id in list(pending):
                    response = await client.get(f"/v1/jobs/{job_id}")
                    assert response.status_code == 200, (job_id, response.text)
                    job = response.json()
                    if job["status"] in ("succeeded", "failed", "canceled"):
                        jobs[job_id] = job
                        pending.discard(job_id)
                await asyncio.sleep(0.3)
            assert all(j["status"] == "succeeded" for j in jobs.values()), [
                j["error"] for j in jobs.values() if j["status"] != "succeeded"
            ][:3]
