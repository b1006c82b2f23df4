"""The slow-client guard (``app.serving``) on a server that is itself slow: time the server
spent not reading is not counted against the client.

A server short of CPU, or busy with other connections, can find a bound run out while the
client's request waits unread in its socket. uvloop reads that first: its libuv (1.45 and
later) polls the sockets before it runs the timers that came due meanwhile, so the request's
head arrives and stops the clock before the clock's expiry runs. Each test runs the guarded
protocol on a uvloop loop in a thread of its own, as ``mediagate serve`` runs it, holds that
loop up past the bound once the client has sent, and talks to it with a blocking socket from
the test's thread. A loop that ran due timers first would refuse the first test's request
with 408."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.serving import GuardedHttpToolsProtocol
from tests.utils.deadlines import REQUEST_S

BOUND_S = 0.3
"""The guard's bounds here: a head, a body, an idle connection."""
HELD_S = 3.0
"""How long the server's loop is held up, by the server itself, once a connection is made and
the client has sent what it sends: ten times the bound, so the bound has always run out when
the loop gets on, with the client's bytes waiting unread in the socket."""
REQUEST = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n"


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def _server(*, held_s: float) -> Iterator[tuple[int, threading.Event]]:
    """A guarded server on a port of its own, and an event to set once a client has sent
    what it sends: on each connection, the server's loop waits for it, then is held up
    ``held_s`` more (0: never waits)."""
    sent = threading.Event()
    config = Config(_app, lifespan="off", log_level="critical")
    config.load()
    state = ServerState()
    loop = uvloop.new_event_loop()

    class Held(GuardedHttpToolsProtocol):
        def __init__(self) -> None:
            super().__init__(config, state, {}, loop)
            self.header_timeout_s = self.body_timeout_s = BOUND_S

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if held_s:  # busy before it reads the request
                sent.wait(REQUEST_S)
                time.sleep(held_s)

    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = loop.run_until_complete(loop.create_server(Held, sock=listening))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port, sent
    finally:

        async def close() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(REQUEST_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(REQUEST_S)
        loop.close()


def _answer(server: tuple[int, threading.Event], request: bytes) -> bytes:
    """What the server answers to ``request`` (written at once) before it closes."""
    port, sent = server
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_S) as client:
        client.sendall(request)
        sent.set()
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = client.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


def _refusal(server: tuple[int, threading.Event], request: bytes) -> tuple[bytes, Any]:
    """The status line and the problem the server answers to ``request`` before it closes."""
    port, sent = server
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_S) as client:
        client.sendall(request)
        sent.set()
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head.partition(b"\r\n")[0], json.loads(body)


def test_a_request_that_waited_on_a_busy_server_is_answered() -> None:
    """The whole request was sent at once; the server was busy past the bound before it read
    it. It is answered, not refused with 408."""
    with _server(held_s=HELD_S) as server:
        answer = _answer(server, REQUEST)
    assert answer.startswith(b"HTTP/1.1 200"), answer


def test_a_head_that_never_ends_is_refused_on_a_busy_server_too() -> None:
    """Half a head, and the server busy past the bound: once it has read what was sent, the
    head still does not end, and the bound holds: 408."""
    with _server(held_s=HELD_S) as server:
        answer = _answer(server, b"GET / HTTP/1.1\r\nhost: te")
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_a_head_that_never_ends_is_refused_on_an_idle_server() -> None:
    with _server(held_s=0) as server:
        answer = _answer(server, b"GET / HTTP/1.1\r\nhost: te")
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_the_servers_own_refusals_of_a_head_point_at_the_headers() -> None:
    """The 408 and the 431 are problems about the request's head: ``/headers``."""
    with _server(held_s=0) as server:
        late = _refusal(server, b"GET / HTTP/1.1\r\nhost: te")
        huge = _refusal(server, b"GET / HTTP/1.1\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n")
    for (status, problem), code in ((late, 408), (huge, 431)):
        assert status.startswith(f"HTTP/1.1 {code}".encode()), status
        assert (problem["status"], problem["code"]) == (code, "invalid_parameter")
        assert problem["errors"][0]["pointer"] == "/headers"
