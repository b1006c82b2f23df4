"""A webhook receiver on loopback for end-to-end tests: records every request it gets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


class Receiver:
    """Answers 503 to its first ``down_for`` requests, then 200; keeps each request."""

    def __init__(self, down_for: int = 0) -> None:
        self.down_for = down_for
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((headers, body))
        status = "503 Service Unavailable" if len(self.requests) <= self.down_for else "200 OK"
        writer.write(
            f"HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    def events(self) -> list[dict[str, Any]]:
        """The bodies received, decoded, in order."""
        return [json.loads(body) for _, body in self.requests]


@asynccontextmanager
async def receiving(down_for: int = 0) -> AsyncIterator[Receiver]:
    """A receiver listening on 127.0.0.1 while the block runs; its ``url`` is set."""
    receiver = Receiver(down_for)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()
