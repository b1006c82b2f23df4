"""Ports and waiting for servers in tests."""

from __future__ import annotations

import socket
import time

import httpx

from tests.utils.deadlines import STARTUP_S


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, timeout_s: float = STARTUP_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout_s}s")


def with_db(redis_url: str, db: int) -> str:
    """The same server, another logical database (so suites do not flush each other)."""
    base, _, last = redis_url.rpartition("/")
    if base.startswith("redis") and last.isdigit():
        return f"{base}/{db}"
    return f"{redis_url.rstrip('/')}/{db}"
