"""The gateway app in the test's own process (lifespan run, no socket), over a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from app.config import Settings
from app.gateway import Gateway, gateway_of
from app.main import create_app

BASE_URL = "http://gateway.test"


@asynccontextmanager
async def in_process_gateway(
    redis_url: str,
    data_dir: Path,
    *,
    registry: CollectorRegistry | None = None,
    headers: Mapping[str, str] | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """The app built from ``settings`` (no worker) and a client calling it in-process."""
    application = create_app(
        Settings(
            redis_url=redis_url,
            data_dir=data_dir,
            signing_key="test-signing-key",
            run_worker=False,
            **settings,
        ),
        registry or CollectorRegistry(),
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers=headers
        ) as client:
            yield gateway_of(application), client
