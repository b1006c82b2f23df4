"""The compose topology in processes: a gateway of two server processes, a standalone worker
and the sandbox providers in a process of their own, on the test Redis.

The gateway shares its metric values through a ``PROMETHEUS_MULTIPROC_DIR`` the test chooses
(so the per-process files can be inspected); the worker serves ``/metrics`` on a port of its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.utils.net import free_port, wait_until_up, with_db
from tests.utils.processes import Process, _spawn, gateway, gateway_env

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SANDBOX_KEY = "mg_test_sandbox"
GATEWAY_PROCESSES = 2
STALE_FILE = "counter_424242.db"
"""Left in the metrics directory before the gateway starts: ``serve`` must clear it."""


@dataclass
class Stack:
    gateway: Process
    worker: Process
    worker_metrics_url: str
    sandbox: Process
    metrics_dir: Path


def tool(name: str) -> str:
    """A command-line tool CI installs (``.ci/run``); skip where it truly is not available."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"`{name}` is not installed (Debian package `prometheus`; see .ci/run)")
    return path


@pytest.fixture(scope="package")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    url = with_db(redis_url, 9)
    redis.Redis.from_url(url).flushdb()
    data_dir: Path = tmp_path_factory.mktemp("ops")
    metrics_dir = data_dir / "prometheus-multiproc"
    metrics_dir.mkdir()
    (metrics_dir / STALE_FILE).write_bytes(b"left over from an earlier run")

    sandbox_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    sandbox = _spawn(
        ["sandbox", "--port", str(sandbox_port)],
        # The emulators fetch inputs from the gateway, on a loopback port not known yet.
        gateway_env(url, data_dir, sandbox_url, MEDIAGATE_URL_ALLOWLIST='["127.0.0.1/32"]'),
        data_dir / "sandbox.log",
        sandbox_url,
    )
    try:
        wait_until_up(f"{sandbox_url}/_sandbox/healthz")
        with gateway(
            url,
            data_dir,
            MEDIAGATE_SANDBOX_URL=sandbox_url,
            MEDIAGATE_PROCESSES=str(GATEWAY_PROCESSES),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        ) as api:
            metrics_port = free_port()
            worker = _spawn(
                ["worker", "--metrics-port", str(metrics_port)],
                gateway_env(url, data_dir, api.url, MEDIAGATE_SANDBOX_URL=sandbox_url),
                data_dir / "worker.log",
                api.url,
            )
            try:
                worker_metrics_url = f"http://127.0.0.1:{metrics_port}"
                wait_until_up(f"{worker_metrics_url}/healthz")
                yield Stack(api, worker, worker_metrics_url, sandbox, metrics_dir)
            finally:
                worker.stop()
    finally:
        sandbox.stop()
