"""The process's outbound client to the providers (``app.upstream_http``): an idle
connection is not reused once a common server may have closed it, and a failed call says
whether the request may have reached the provider."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import httpx
import pytest

from app.domain.errors import ProviderUnavailable
from app.providers._http import upstream_errors
from app.upstream_http import UPSTREAM_KEEPALIVE_S, upstream_client
from tests.utils.raw_server import raw_server, read_request

SERVER_IDLE_S = 4.5
"""Where this server closes an idle connection: later than the client keeps one, earlier than
the 5 s of uvicorn's and Node's defaults."""


async def test_a_submission_after_an_idle_pause_goes_on_a_new_connection() -> None:
    """The server here closes a connection idle for ``SERVER_IDLE_S`` at the moment the next
    request arrives on it (the race a real server's idle timer runs against a client): a
    client that kept the connection that long would send its ``POST`` into the close and fail.
    The client keeps idle connections for less, so the second submission, sent after that
    pause, opens a new connection and is answered."""
    assert UPSTREAM_KEEPALIVE_S < SERVER_IDLE_S
    connections = 0
    refused = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections, refused
        connections += 1
        answered = time.monotonic()
        while True:
            await read_request(reader)
            if time.monotonic() - answered >= SERVER_IDLE_S:
                refused += 1
                return  # closed without an answer, as an idle timer would have
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()
            answered = time.monotonic()

    client = upstream_client()
    try:
        async with raw_server(serve) as url:
            first = await client.post(f"{url}/submit", json={"n": 1})
            await asyncio.sleep(SERVER_IDLE_S)
            second = await client.post(f"{url}/submit", json={"n": 2})
    finally:
        await client.aclose()
    assert (first.status_code, second.status_code) == (200, 200)
    assert (connections, refused) == (2, 0)


async def _failed_submission(url: str) -> ProviderUnavailable:
    """What a submission to ``url`` through the upstream client raises, as an adapter sees it
    (``upstream_errors``)."""
    client = upstream_client()
    try:
        with pytest.raises(ProviderUnavailable) as caught:
            with upstream_errors("imagepig"):
                await client.post(f"{url}/api/call/generate", json={"prompt": "x"})
    finally:
        await client.aclose()
    return caught.value


async def test_a_server_that_closes_after_the_request_leaves_it_unanswered() -> None:
    """The request went out whole and the server closed without a word: the provider may have
    it, so the attempt must be recorded as unanswered (it may be billed), not as refused."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with raw_server(serve) as url:
        failure = await _failed_submission(url)
    assert isinstance(failure.__cause__, httpx.RemoteProtocolError)
    assert failure.unanswered


async def test_a_connection_reset_after_the_request_leaves_it_unanswered() -> None:
    """Reset (not closed) once the request arrived: the same careful reading."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async with raw_server(serve) as url:
        failure = await _failed_submission(url)
    assert failure.unanswered


async def test_a_refused_connection_sent_nothing() -> None:
    """Nobody listens: nothing went out, the attempt is not accepted, and it is not a timeout."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    failure = await _failed_submission(f"http://127.0.0.1:{port}")
    assert isinstance(failure.__cause__, httpx.ConnectError)
    assert not failure.unanswered


async def test_a_cookie_one_call_was_given_is_not_sent_with_the_next() -> None:
    """A provider's ``Set-Cookie`` is not kept: the client calls it for every tenant and with
    each credential, and one call's cookie must not ride along on another's."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            heads.append(head.lower())
            writer.write(
                b"HTTP/1.1 200 OK\r\nset-cookie: session=tenant-a; Path=/\r\n"
                b"content-length: 2\r\n\r\n{}"
            )
            await writer.drain()

    client = upstream_client()
    try:
        async with raw_server(serve) as url:
            for _ in range(2):
                answered = await client.get(f"{url}/api/status")
                assert answered.status_code == 200
    finally:
        await client.aclose()
    assert len(heads) == 2
    assert b"cookie:" not in heads[1]
    assert not client.cookies
