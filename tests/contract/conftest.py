"""One live gateway (sandbox mode, real HTTP) shared by the API-surface tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.utils.net import with_db
from tests.utils.processes import Process, gateway

SANDBOX_KEY = "mg_test_sandbox"
COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
REDIS_DB = 10
"""Logical database of the shared gateway (the e2e suites use 1–4)."""


@pytest.fixture(scope="package")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    url = with_db(redis_url, REDIS_DB)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    data_dir: Path = tmp_path_factory.mktemp("contract-gateway")
    with gateway(url, data_dir, MEDIAGATE_SANDBOX_JOB_S="0.05") as proc:
        yield proc
