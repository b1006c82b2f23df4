"""Shared fixtures: a real Redis server for the whole session, clean before every test, and
a real S3 server (SeaweedFS) started once by the first test that needs one.

With ``MEDIAGATE_TEST_REDIS_URL`` set, that server is used (and flushed; one test process
only); otherwise each test process starts a private ``redis-server`` on a free port and stops
it at the end.
"""

from __future__ import annotations

import functools
import os
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx._transports.default
import pytest
import redis
from redis.asyncio import Redis

from app.store.connection import connect
from app.store.embedded import redis_server_binary
from tests.utils.deadlines import STARTUP_S, STORE_TIMEOUT_S
from tests.utils.net import free_port
from tests.utils.seaweedfs import S3Server, seaweedfs

_create_ssl_context = httpx.create_ssl_context


@functools.cache
def _default_tls(trust_env: bool, cafile: str | None, capath: str | None) -> ssl.SSLContext:
    return _create_ssl_context(verify=True, trust_env=trust_env)


def _shared_default_tls(
    verify: ssl.SSLContext | str | bool = True, cert: Any = None, trust_env: bool = True
) -> ssl.SSLContext:
    """httpx builds a TLS context for every client, loading the whole CA bundle (20 ms of
    CPU) even for the plain-HTTP loopback URLs the tests call, and the tests make hundreds
    of clients. The ones made with the default verification share one context per setting
    (an ``SSLContext`` is meant to be shared); any other verification is built as before."""
    if verify is True and cert is None:
        env = os.environ if trust_env else {}
        return _default_tls(trust_env, env.get("SSL_CERT_FILE"), env.get("SSL_CERT_DIR"))
    return _create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)


# httpx's transport module imports the function without re-exporting it: patched where it is read.
httpx._transports.default.create_ssl_context = _shared_default_tls  # type: ignore[attr-defined]


def _start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server on a free port; another port if that one was taken meanwhile
    (parallel test workers pick ports at the same time)."""
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + STARTUP_S
        while process.poll() is None:
            try:
                redis.Redis.from_url(url).ping()
                return process, url
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        process.kill()
        process.wait()
    raise RuntimeError("test redis-server did not start")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One redis-server per test process: each parallel worker (pytest-xdist) has its own, so
    the logical databases the suites use (``tests.utils.net.with_db``) never meet."""
    given = os.environ.get("MEDIAGATE_TEST_REDIS_URL")
    if given:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            raise pytest.UsageError(
                "MEDIAGATE_TEST_REDIS_URL is one server for every worker: run with -n 0"
            )
        yield given
        return
    process, url = _start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) for the whole session, started by the first test that
    asks for it; tests keep apart by bucket or prefix."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
async def separate_clients(redis_url: str, redis_client: Redis) -> AsyncIterator[list[Redis]]:
    """Five clients with their own connection pools, as five processes would have."""
    clients = [connect(redis_url, timeout_s=STORE_TIMEOUT_S) for _ in range(5)]
    yield clients
    for client in clients:
        await client.aclose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = connect(redis_url, timeout_s=STORE_TIMEOUT_S)
    await client.flushdb()
    yield client
    await client.aclose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first: each file runs on one test process (``--dist loadfile``, with
    ``--no-loadscope-reorder`` so that this order is kept), and a long file started last
    would run alone at the end. Files marked ``long`` go first, then those that start real
    processes, then the in-process ones, which fill the gaps."""

    def weight(item: pytest.Item) -> int:
        if item.get_closest_marker("long") is not None:
            return 0
        if {"e2e", "ops", "contract", "hostile"} & set(item.path.parts):
            return 1
        return 2

    items.sort(key=weight)  # stable: a file's tests stay together and in order
