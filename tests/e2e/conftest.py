from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils.clients import tenant_client
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway
from tests.utils.sandbox import CONTROL

SANDBOX_KEY = "mg_test_sandbox"


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    data_dir: Path = tmp_path_factory.mktemp("gateway")
    with gateway(with_db(redis_url, 1), data_dir) as proc:
        yield proc


@pytest.fixture
async def client(live_gateway: Process) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox tenant's client of the module's gateway (``live_gateway``, which a module
    overrides to start its gateway with its own settings), the emulators' faults cleared."""
    async with tenant_client(live_gateway) as c:
        await c.delete("/_sandbox/faults", headers=CONTROL)
        yield c
