"""Metrics stay whole across processes: ``serve --processes 2`` answers one ``/metrics`` with
what both processes served, and a standalone worker serves its own on its own port."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from redis.exceptions import ConnectionError as RedisConnectionError

from app.health import observe_store
from app.metrics import MULTIPROC_ENV, Metrics, multiprocess_metrics
from tests.ops.conftest import GATEWAY_PROCESSES, STALE_FILE, Stack
from tests.utils.deadlines import JOB_S

pytestmark = pytest.mark.e2e

HEALTHZ = re.compile(
    r'^mediagate_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$', re.M
)


def _healthz_count(text: str) -> float:
    found = HEALTHZ.search(text)
    return float(found[1]) if found else 0.0


def _healthz_by_process(directory: Path) -> dict[int, float]:
    """Each process's own count, read from its own file alone."""
    counts = {}
    wanted = {"method": "GET", "route": "/healthz", "status": "200"}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        families = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        for family in families:
            for sample in family.samples:
                if sample.name == "mediagate_http_requests_total" and sample.labels == wanted:
                    counts[pid] = sample.value
    return counts


async def test_one_scrape_counts_the_requests_of_every_server_process(stack: Stack) -> None:
    assert not (stack.metrics_dir / STALE_FILE).exists(), "serve left an old run's file"
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=10) as probe:
        before = _healthz_count((await probe.get("/metrics")).text)

    # New connections, many at a time, until both processes have answered some (the second
    # may still be starting on a busy machine).
    sent = 0
    deadline = time.monotonic() + JOB_S
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=10, limits=limits) as client:
        while True:
            responses = await asyncio.gather(*(client.get("/healthz") for _ in range(25)))
            assert all(r.status_code == 200 for r in responses)
            sent += len(responses)
            served = {pid: n for pid, n in _healthz_by_process(stack.metrics_dir).items() if n}
            if len(served) >= GATEWAY_PROCESSES or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert len(served) == GATEWAY_PROCESSES, f"one process served everything: {served}"

    # Whichever process answers the scrape, it reports every process's requests.
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=10) as probe:
        for _ in range(4):
            text = (await probe.get("/metrics", headers={"Connection": "close"})).text
            assert _healthz_count(text) - before == sent
    assert sum(_healthz_by_process(stack.metrics_dir).values()) == _healthz_count(text)
    # Each metric appears once: merged, not one copy per process.
    assert len(re.findall(r"^# TYPE mediagate_queue_depth gauge$", text, re.M)) == 1
    assert re.search(r"^mediagate_redis_up 1\.0$", text, re.M)
    assert re.search(r'^mediagate_circuit_state\{provider="imagepig"\} \d', text, re.M)


async def test_a_standalone_worker_serves_metrics_health_and_readiness(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.worker_metrics_url, timeout=10) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["redis"] is True
        text = (await client.get("/metrics")).text
    assert re.search(r"^mediagate_redis_up 1\.0$", text, re.M)
    assert re.search(r"^mediagate_queue_depth \d", text, re.M)
    assert re.search(r'^mediagate_jobs_in_flight\{provider="pixelapi"\} 0\.0$', text, re.M)
    assert re.search(r'^mediagate_rate_limited_total\{scope="upstream"\} ', text, re.M)


def test_serve_prepares_a_fresh_shared_directory_only_for_several_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_metrics(1) as none:
        assert none is None and MULTIPROC_ENV not in os.environ
    with multiprocess_metrics(3) as made:
        assert made is not None and made.is_dir()
        assert os.environ[MULTIPROC_ENV] == str(made)
        (made / "counter_1.db").write_bytes(b"")
    assert not made.exists() and MULTIPROC_ENV not in os.environ

    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_7.db").write_bytes(b"old")
    (given / "notes.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with multiprocess_metrics(1) as used:
        assert used == given
        assert sorted(p.name for p in given.iterdir()) == ["notes.txt"]
    assert given.is_dir()


class _Store:
    def __init__(self, depth: int | None) -> None:
        self.depth = depth

    async def queue_depth(self) -> int:
        if self.depth is None:
            raise RedisConnectionError("Connection refused")
        return self.depth


class _Providers(list[str]):
    def bindings(self, operation: object) -> dict[str, object]:
        return {name: None for name in self}


def _jobs(depth: int | None) -> Any:
    """What :func:`observe_store` reads of the job service; ``depth`` None: Redis refuses."""
    providers = _Providers(["imagepig", "pixelapi"])
    return SimpleNamespace(store=_Store(depth), providers=providers)


async def test_a_scrape_reports_the_store_down_instead_of_failing() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    assert await observe_store(metrics, _jobs(7)) is True
    assert registry.get_sample_value("mediagate_redis_up") == 1
    assert registry.get_sample_value("mediagate_queue_depth") == 7
    assert await observe_store(metrics, _jobs(None)) is False
    assert registry.get_sample_value("mediagate_redis_up") == 0
    assert registry.get_sample_value("mediagate_queue_depth") == 7  # last known
    assert registry.get_sample_value("mediagate_circuit_state", {"provider": "pixelapi"}) == 0
    fallback = {"operation": "image.generate", "from": "imagepig", "to": "pixelapi"}
    assert registry.get_sample_value("mediagate_fallbacks_total", fallback) == 0
