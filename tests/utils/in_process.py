"""The gateway app in the test's own process (lifespan run, no socket), over a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope, Send

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


class SentBodies:
    """The application behind an in-process client, keeping every body chunk it sends.

    ``httpx.ASGITransport`` drops the body of an answer to ``HEAD`` (as a server does), so
    whether the application itself sent one is read here."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        transport = client._transport
        assert isinstance(transport, httpx.ASGITransport)
        self.app = transport.app
        transport.app = self
        self.chunks: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def keep(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.chunks.append(bytes(message.get("body", b"")))
            await send(message)

        await self.app(scope, receive, keep)

    def sent(self) -> bytes:
        """Every body chunk sent since the last call."""
        body = b"".join(self.chunks)
        self.chunks.clear()
        return body
