"""Ports and waiting for servers in tests."""

from __future__ import annotations

import itertools
import os
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.utils.deadlines import STARTUP_S

LOWEST_PORT = 10000


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (and to ``bind(0)``)."""
    try:
        low = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
        return int(low)
    except (OSError, IndexError, ValueError):
        return 32768  # Linux's default


def _share() -> range:
    """This test process's own ports: below the ephemeral range, one slice per xdist worker."""
    high = _ephemeral_low()
    if high - LOWEST_PORT < 1000:
        return range(0)  # no room below the ephemeral range: fall back to bind(0)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker) if worker.isdigit() else 0
    size = (high - LOWEST_PORT) // max(count, 1)
    start = LOWEST_PORT + index * size
    return range(start, start + size)


def _candidates() -> Iterator[int]:
    share = _share()
    if not share:
        return iter(())
    offset = random.randrange(len(share))
    return itertools.cycle([*share[offset:], *share[:offset]])


_next = _candidates()


def free_port() -> int:
    """A port nothing listens on, for a server a test starts afterwards.

    Taken from this process's own share of the ports below the kernel's ephemeral range, in
    turn: a port from ``bind(0)`` is an ephemeral one, which the kernel may give to any
    outgoing connection (the suite makes thousands) between the pick and the server's bind,
    and the server then fails with "address already in use". No other test process picks
    from the same share, and ports are not reused until the share has gone round."""
    for port in itertools.islice(_next, 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        found: int = sock.getsockname()[1]
        return found


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
