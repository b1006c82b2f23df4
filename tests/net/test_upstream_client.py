"""The process's outbound client to the providers (``app.upstream_http``): an idle
connection is not reused once a common server may have closed it, and a failed call says
whether the request may have reached the provider."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import time
from typing import Any

import httpx
import pytest

from app.domain.errors import ProviderUnavailable
from app.providers._http import upstream_errors
from app.upstream_http import UPSTREAM_KEEPALIVE_S, UpstreamTransport, upstream_client
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


async def test_a_connection_reset_while_the_answer_is_read_leaves_it_unanswered() -> None:
    """The answer's head arrived, then the connection was reset half-way through its body:
    the request certainly went out, so the attempt is unanswered, not "nothing was sent"."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"{" * 10)
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async with raw_server(serve) as url:
        failure = await _failed_submission(url)
    assert isinstance(failure.__cause__, httpx.ReadError | httpx.RemoteProtocolError)
    assert failure.unanswered


async def test_a_compressed_answer_is_read_decoded() -> None:
    """An answer sent with ``Content-Encoding: gzip`` reads as its decoded bytes, as through
    a stock httpx client."""
    payload = gzip.compress(b'{"image": "done"}')

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-type: application/json"
                + f"\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()

    client = upstream_client()
    try:
        async with raw_server(serve) as url:
            answer = await client.post(f"{url}/api/call/generate", json={"prompt": "x"})
    finally:
        await client.aclose()
    assert answer.json() == {"image": "done"}
    assert answer.headers["content-length"] == str(len(payload))


async def test_a_refused_connection_sent_nothing() -> None:
    """Nobody listens: nothing went out, the attempt is not accepted, and it is not a timeout."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    failure = await _failed_submission(f"http://127.0.0.1:{port}")
    assert isinstance(failure.__cause__, httpx.ConnectError)
    assert not failure.unanswered


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_cookie_one_call_was_given_is_not_sent_with_the_next(host: str) -> None:
    """A provider's ``Set-Cookie`` is not kept: the client calls it for every tenant and with
    each credential, and one call's cookie must not ride along on another's. A provider is
    reached by its name, whose cookies a cookie jar keeps (unlike an IP address's); both the
    plain requests sent directly (``POST``) and those through httpx's layers (a redirect
    followed) are covered."""
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
            url = url.replace("127.0.0.1", host)
            for _ in range(2):
                answered = await client.post(f"{url}/api/call", json={})
                assert answered.status_code == 200
            answered = await client.get(f"{url}/api/status", follow_redirects=True)
            assert answered.status_code == 200
    finally:
        await client.aclose()
    assert len(heads) == 3
    assert [b"cookie:" in head for head in heads] == [False, False, False]
    assert not client.cookies


# -- plain requests straight to the transport -----------------------------------------------

SHAPES: dict[str, dict[str, object]] = {
    "get with headers": {"method": "GET", "headers": {"X-Key": "k1"}, "timeout": 7.0},
    "post json": {"method": "POST", "json": {"prompt": "a lighthouse", "n": [1, 2]}},
    "post bytes": {
        "method": "POST",
        "content": b"\x00raw\xff",
        "headers": {"Content-Type": "application/octet-stream"},
    },
    "post form": {"method": "POST", "data": {"a": "1", "b": "two words"}},
    "post multipart": {
        "method": "POST",
        "data": {"field": "v"},
        "files": {"image": ("a.png", b"\x89PNG-bytes", "image/png")},
    },
    "put with query parameters": {"method": "PUT", "params": {"q": "x y"}, "json": {}},
    "get with basic auth": {"method": "GET", "auth": ("user", "secret")},
}
"""What the adapters send. Query parameters of the call's own are merged by httpx's request
building; an authentication flow goes through httpx's sending; the rest is built and sent
directly."""


def _normalized(head: bytes, body: bytes) -> tuple[list[bytes], bytes]:
    """A request as received, its multipart boundary (random per request) replaced."""
    lines = head.split(b"\r\n")
    boundary = next((line.split(b"boundary=")[1] for line in lines if b"boundary=" in line), None)
    if boundary is not None:
        head, body = head.replace(boundary, b"B"), body.replace(boundary, b"B")
    request_line, *fields = [line for line in head.split(b"\r\n") if line]
    return [request_line, *sorted(field.lower() for field in fields)], body


async def test_a_plain_request_reaches_the_wire_as_through_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each shape sent by the upstream client and by a stock httpx client over the same kind
    of transport: the server receives the same request line, header fields and body, and
    both read the same answer."""
    received: list[tuple[bytes, bytes]] = []
    through_httpx: list[httpx.AsyncClient] = []
    stock_send = httpx.AsyncClient.send

    async def counted(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> httpx.Response:
        through_httpx.append(self)
        return await stock_send(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "send", counted)
    ours_via_httpx: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            received.append(await read_request(reader))
            writer.write(
                b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                b'x-answer: yes\r\ncontent-length: 11\r\n\r\n{"ok": 1.5}'
            )
            await writer.drain()

    ours = upstream_client()
    stock = httpx.AsyncClient(
        transport=UpstreamTransport(trust_env=False),
        timeout=httpx.Timeout(60.0, connect=5.0),
        follow_redirects=False,
    )
    try:
        async with raw_server(serve) as url:
            for name, shape in SHAPES.items():
                answers = []
                for client in (ours, stock):
                    kwargs: dict[str, Any] = dict(shape)  # httpx's keyword arguments
                    method = str(kwargs.pop("method"))
                    before = through_httpx.count(ours)
                    answers.append(await client.request(method, f"{url}/v1/x?y=1", **kwargs))
                    if through_httpx.count(ours) > before:
                        ours_via_httpx.append(name)
                theirs, mine = received[-1], received[-2]
                assert _normalized(*mine) == _normalized(*theirs), name
                for answer in answers:
                    assert answer.status_code == 201, name
                    assert answer.json() == {"ok": 1.5}, name
                    assert answer.headers["x-answer"] == "yes", name
                    assert answer.request.method == method, name
                assert answers[0].request.url == answers[1].request.url, name
    finally:
        await ours.aclose()
        await stock.aclose()
    assert len(received) == 2 * len(SHAPES)
    assert ours_via_httpx == ["get with basic auth"]


BUILT: dict[str, dict[str, Any]] = {
    "post json": {"method": "POST", "json": {"prompt": "é 😀", "n": [1, 2.5], "x": None}},
    "post empty json": {"method": "POST", "json": {}},
    "json with its own type": {
        "method": "POST",
        "json": [1],
        "headers": {"content-type": "application/vnd.x+json"},
    },
    "post bytes": {"method": "POST", "content": b"\x00raw\xff", "headers": {"X-A": "1"}},
    "post empty bytes": {"method": "PUT", "content": b""},
    "post nothing": {"method": "post"},
    "patch nothing, chunked said": {"method": "PATCH", "headers": {"Transfer-Encoding": "x"}},
    "get": {"method": "GET", "timeout": 7.5},
    "get, a default replaced": {
        "method": "GET",
        "headers": [("accept", "image/png"), ("X-Twice", "1"), ("x-twice", "2")],
        "timeout": httpx.Timeout(3.0, connect=1.0),
    },
    "delete with a host of its own": {"method": "DELETE", "headers": {"Host": "example.test"}},
    "a text": {"method": "POST", "content": "text é"},
    "a timeout of none": {"method": "POST", "json": 1, "timeout": None},
}
"""Requests the upstream client builds itself, and a few it leaves to httpx."""


@pytest.mark.parametrize("name", list(BUILT))
async def test_a_request_is_built_as_httpx_builds_it(name: str) -> None:
    """The upstream client's own building gives, field for field, what httpx's gives: the
    same header fields in the same order and case, body, URL and extensions."""
    kwargs = dict(BUILT[name])
    method = str(kwargs.pop("method"))
    ours = upstream_client()
    stock = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))
    try:
        for url in ("http://127.0.0.1:8123/v1/x?y=1", "https://api.example.test/a"):
            mine = ours.build_request(method, url, **kwargs)
            theirs = stock.build_request(method, url, **kwargs)
            assert mine.headers.raw == theirs.headers.raw, name
            assert mine.content == theirs.content, name
            assert (mine.method, mine.url) == (theirs.method, theirs.url), name
            assert mine.extensions == theirs.extensions, name
            assert isinstance(mine.stream, httpx.ByteStream), name
    finally:
        await ours.aclose()
        await stock.aclose()


async def test_a_plain_request_keeps_its_timeout() -> None:
    """The call's own timeout reaches the transport on the direct path: a server that never
    answers is given up after it, as a read timeout the adapters know."""
    hold = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await hold.wait()

    client = upstream_client()
    try:
        async with raw_server(serve) as url:
            with pytest.raises(httpx.ReadTimeout) as caught:
                await client.post(f"{url}/slow", json={}, timeout=0.3)
    finally:
        hold.set()
        await client.aclose()
    assert caught.value.request.url == httpx.URL(f"{url}/slow")
    assert caught.value.request.extensions["timeout"]["read"] == 0.3
