"""``mediagate serve --worker-processes N``: the server processes only serve, N worker
processes run the jobs at ``--worker-nice`` below them, and stop with ``serve``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from app.store.workers import WorkerPresence
from tests.utils.deadlines import JOB_S, STARTUP_S
from tests.utils.net import free_port, with_db
from tests.utils.processes import Process, gateway

pytestmark = pytest.mark.e2e

SANDBOX_KEY = "mg_test_sandbox"


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")


def _nice(pid: int) -> int:
    # /proc/<pid>/stat: the 19th field, counted after the ")" closing the command name
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[16])


async def test_jobs_run_in_worker_processes_below_the_servers(
    redis_url: str, tmp_path: Path
) -> None:
    url = with_db(redis_url, 7)
    redis = Redis.from_url(url, decode_responses=True)
    await redis.flushdb()
    options = ["--processes", "2", "--worker-processes", "1", "--worker-nice", "7"]
    metrics = str(free_port())
    with gateway(url, tmp_path, options=options, MEDIAGATE_WORKER_METRICS_PORT=metrics) as serve:
        try:
            await _run_jobs(serve, redis)
        finally:
            workers = [p for p in _children(serve.popen.pid) if " worker" in _cmdline(p)]
            await redis.aclose()
    assert serve.popen.returncode is not None
    assert len(workers) == 1
    assert not Path(f"/proc/{workers[0]}").exists() or "zombie" in _state(workers[0])


async def _run_jobs(serve: Process, redis: Redis) -> None:
    workers = [p for p in _children(serve.popen.pid) if " worker" in _cmdline(p)]
    servers = [p for p in _children(serve.popen.pid) if "spawn_main" in _cmdline(p)]
    assert len(workers) == 1 and len(servers) == 2
    assert _nice(workers[0]) == _nice(servers[0]) + 7 == _nice(servers[1]) + 7
    presence = WorkerPresence(redis)
    deadline = time.monotonic() + STARTUP_S
    while await presence.alive(60_000) < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    async with httpx.AsyncClient(
        base_url=serve.url, headers={"Authorization": f"Bearer {SANDBOX_KEY}"}, timeout=30
    ) as client:
        answers = [
            await client.post(
                "/v1/images/generate", json={"prompt": f"p{i}", "provider": "imagepig"}
            )
            for i in range(4)
        ]
        assert {a.status_code for a in answers} == {202}
        deadline = time.monotonic() + JOB_S
        statuses: set[str] = set()
        while time.monotonic() < deadline:
            jobs = [(await client.get(f"/v1/jobs/{a.json()['id']}")).json() for a in answers]
            statuses = {job["status"] for job in jobs}
            if statuses == {"succeeded"}:
                break
            await asyncio.sleep(0.2)
        assert statuses == {"succeeded"}
    # one worker only: the server processes run none of their own
    assert await presence.alive(60_000) == 1


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "zombie"
