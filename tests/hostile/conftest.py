"""Shared fixtures of the hostile-tenant suite: a gateway process driven over real HTTP, a
listener that counts every connection reaching a loopback address, the process's memory,
and what a refused request must leave behind (nothing).

Probes assert outcomes: no 5xx, the documented 4xx with a stable ``code``, nothing stored,
nothing reaching inside the network, memory back near its baseline.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis

from tests.utils.deadlines import JOB_S, REQUEST_S
from tests.utils.net import free_port, with_db
from tests.utils.processes import ADMIN_TOKEN, Process, gateway
from tests.utils.sandbox import CONTROL

SANDBOX_KEY = "mg_test_sandbox"
HOSTILE_DB = 10
"""Its own Redis database (other suites use 1–9, the fairness and quota probes 12 and 13)."""
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TENANT = {"Authorization": f"Bearer {SANDBOX_KEY}"}


@dataclass
class Listener:
    """A TCP listener on loopback that counts connections and the bytes they sent."""

    port: int
    connections: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def counting_listener() -> Iterator[Listener]:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    listener = Listener(server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(1)
            try:
                listener.connections.append(conn.recv(4096))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                listener.connections.append(b"")
            finally:
                conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


@contextmanager
def redirecting_server(to: str, hits: list[str]) -> Iterator[str]:
    """A server answering every request with ``302 Location: <to>`` (what a guard must not
    follow), noting each method and path in ``hits``; its base URL."""

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            hits.append(f"{self.command} {self.path}")
            self.send_response(302)
            self.send_header("Location", to)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class Hostile:
    """The gateway under attack and what watches it."""

    process: Process
    data_dir: Path
    redis_url: str
    listener: Listener
    redirect_url: str
    redirect_hits: list[str]

    @property
    def url(self) -> str:
        return self.process.url

    def rss_mb(self) -> float:
        """Resident memory of the gateway process and its children, in MB."""
        proc = psutil.Process(self.process.popen.pid)
        procs = [proc, *proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20

    def stored(self) -> tuple[int, int, int]:
        """Jobs and files in Redis, and blob files on disk."""
        r = redis.Redis.from_url(self.redis_url)
        try:
            jobs, files = len(r.keys("mg:job:*")), len(r.keys("mg:file:*"))
        finally:
            r.close()
        blobs = self.data_dir / "blobs"
        on_disk = sum(1 for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else 0
        return jobs, files, on_disk


@pytest.fixture(scope="package")
def hostile(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """One gateway (sandbox mode, in-process worker) for the whole suite, with a listener on
    loopback and a redirecting server it is allowed to reach (``host:port``)."""
    data_dir: Path = tmp_path_factory.mktemp("hostile")
    url = with_db(redis_url, HOSTILE_DB)
    redis.Redis.from_url(url).flushdb()
    hits: list[str] = []
    with (
        counting_listener() as listener,
        redirecting_server(f"{listener.url}/a.png", hits) as redirect,
    ):
        allow = redirect.removeprefix("http://")
        with gateway(url, data_dir, MEDIAGATE_URL_ALLOWLIST=f'["{allow}"]') as proc:
            yield Hostile(proc, data_dir, url, listener, redirect, hits)
            # Over the whole suite: not one 5xx answered, not one connection inside.
            assert server_errors(proc.url) == []
            assert listener.connections == []


def server_errors(base_url: str) -> list[str]:
    """The gateway's own count of 5xx answers, by route (``/metrics``)."""
    text = httpx.get(f"{base_url}/metrics", timeout=REQUEST_S).text
    return [
        line
        for line in text.splitlines()
        if line.startswith("mediagate_http_requests_total") and 'status="5' in line
    ]


@pytest.fixture
async def tenant(hostile: Hostile) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hostile.url, headers=TENANT, timeout=REQUEST_S) as client:
        yield client


@pytest.fixture
async def nothing_stored(hostile: Hostile) -> AsyncIterator[None]:
    """Asserts that the test left no job, file record or blob behind."""
    before = hostile.stored()
    yield
    await asyncio.sleep(0)  # nothing is written after the answer, but let the loop turn
    assert hostile.stored() == before


async def finished(tenant: httpx.AsyncClient, location: str) -> dict[str, Any]:
    """The job at ``location`` once terminal (a test that makes jobs waits for them, so no
    output is still being written when the next test counts what is stored)."""
    deadline = asyncio.get_running_loop().time() + JOB_S
    while True:
        job: dict[str, Any] = (await tenant.get(location)).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.2)


def assert_problem(
    response: httpx.Response, status: int, code: str, pointer: str | None = None
) -> dict[str, Any]:
    assert response.status_code < 500, response.text
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    if pointer is not None:
        assert pointer in [e["pointer"] for e in body["errors"]], body
    return body


async def sandbox_stats(client: httpx.AsyncClient) -> dict[str, Any]:
    stats: dict[str, Any] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return stats


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int
    """Body bytes the client had written when the answer came."""


async def blast(
    base_url: str,
    path: str,
    headers: dict[str, str],
    chunks: Iterator[bytes],
    *,
    length: int | None,
    timeout_s: float = REQUEST_S,
) -> Answer:
    """POST a body from a generator, as an attacker would: declared ``length`` (or chunked
    when None), written until the server answers, then the connection is dropped."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", framing]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
    sent = 0
    try:
        for chunk in chunks:
            if head.done():
                break
            writer.write(chunk if length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            drained = asyncio.ensure_future(writer.drain())
            await asyncio.wait({drained, head}, timeout=timeout_s, return_when="FIRST_COMPLETED")
            if not drained.done():
                drained.cancel()
        else:
            if length is None:
                writer.write(b"0\r\n\r\n")
        raw = await asyncio.wait_for(head, timeout_s)
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        answer_headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                answer_headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(answer_headers.get("content-length", "0")))
        return Answer(int(status_line.split()[1]), answer_headers, body, sent)
    finally:
        head.cancel()
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def repeated(chunk: bytes, total: int) -> Iterator[bytes]:
    """``total`` bytes as a stream of ``chunk`` (never built in memory)."""
    sent = 0
    while sent < total:
        piece = chunk[: total - sent]
        sent += len(piece)
        yield piece
