"""Fixtures shared by the API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from app.gateway import Gateway
from tests.utils.in_process import in_process_gateway


@pytest.fixture
async def gateway(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """The sandbox gateway in process, on a Redis emptied for the test (``redis_client``)."""
    async with in_process_gateway(redis_url, tmp_path, sandbox=True) as built:
        yield built
