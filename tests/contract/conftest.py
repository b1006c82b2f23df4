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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each fuzzed operation gets its own node id.

    schemathesis names an operation's test ``test_operation[POST /v1/images/generate]``, but
    pytest 9 builds a test's id from its original name and parameters, so every one had the id
    ``…::test_operation``: pytest-xdist hands out items by id and ran one operation of the 61.
    """
    for item in items:
        if isinstance(item, pytest.Function) and item.name != item.originalname:
            parent = item.parent
            if parent is not None and item.nodeid == f"{parent.nodeid}::{item.originalname}":
                node_id = item._id  # noqa: SLF001 -- pytest keeps the id only here
                item._id = type(node_id).parse(f"{parent.nodeid}::{item.name}")  # noqa: SLF001


@pytest.fixture(scope="package")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    url = with_db(redis_url, REDIS_DB)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    data_dir: Path = tmp_path_factory.mktemp("contract-gateway")
    with gateway(url, data_dir, MEDIAGATE_SANDBOX_JOB_S="0.05") as proc:
        yield proc
