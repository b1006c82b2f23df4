"""Shared fixtures: a real Redis server for the whole session, clean before every test.

With ``MEDIAGATE_TEST_REDIS_URL`` set, that server is used (and flushed); otherwise a private
``redis-server`` is started on a free port and stopped at the end.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from app.store.connection import connect
from app.store.embedded import redis_server_binary
from tests.utils.net import free_port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("MEDIAGATE_TEST_REDIS_URL")
    if given:
        yield given
        return
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
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
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("test redis-server did not start") from None
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
async def separate_clients(redis_url: str, redis_client: Redis) -> AsyncIterator[list[Redis]]:
    """Five clients with their own connection pools, as five processes would have."""
    clients = [connect(redis_url) for _ in range(5)]
    yield clients
    for client in clients:
        await client.aclose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()
