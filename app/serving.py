"""The HTTP server's guard against slow clients (slowloris), a layer below the application.

uvicorn closes a keep-alive connection that stays idle (``timeout_keep_alive``), but once a
client has sent one byte of a request nothing bounds how long the rest may take: a client that
sends its headers a byte every few seconds, or opens connections and sends nothing, holds a
connection (and a file descriptor) forever. :class:`GuardedHttpToolsProtocol` is uvicorn's
httptools protocol with three bounds, each closing the connection when exceeded:

- the request line and headers must arrive within ``http_header_timeout_s`` of the
  connection opening, or of the previous response ending (408 before closing);
- they may total at most ``http_max_head_bytes`` (431 before closing);
- the body must arrive within ``http_body_timeout_s`` of the headers (the application sees
  the client disconnect).

What the server answers itself is a problem (``application/problem+json``, code
``invalid_parameter``), as the application's errors are: the 408 and the 431, and the 400 for a
request that is not HTTP/1.1 (a character a request line or header may not hold, a
``Content-Length`` that is not one number, a body framed by both ``Content-Length`` and
``Transfer-Encoding``, a malformed chunk), which uvicorn answers in plain text. The gateway
serves no WebSocket (``server_options`` turns uvicorn's off): a request asking to upgrade is
served as the HTTP request it is, and the route answers it.

It also records when each request's first bytes were read (the ``ARRIVAL`` scope extension of
``app.sandbox.timing``): the emulators' rate windows date a request by it, not by when a busy
event loop gets to run its handler.

Long answers (``Prefer: wait``, event streams) are not bounded here: the timers stop once
the request is fully received. ``mediagate serve`` and ``mediagate sandbox`` run with it
(``server_options``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.api.problems import PROBLEM_JSON, problem_body
from app.config import get_settings
from app.domain.errors import ErrorCode, GatewayError
from app.sandbox.timing import ARRIVAL

PROTOCOL = "app.serving:GuardedHttpToolsProtocol"
"""What ``uvicorn.run(http=...)`` takes: imported by name in each server process."""


HEAD_POINTER = "/headers"
"""What the 408 and the 431 are about: the request line and headers, not (all) received."""


def _refusal(status: int, reason: str, detail: str, pointer: str | None = None) -> bytes:
    """The server's own answer, a problem, before it closes the connection."""
    error = GatewayError(detail, ErrorCode.invalid_parameter, status)
    body = json.dumps(problem_body(error, "", pointer), separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {PROBLEM_JSON}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.header_timeout_s = settings.http_header_timeout_s
        self.body_timeout_s = settings.http_body_timeout_s
        self.max_head_bytes = settings.http_max_head_bytes
        self._timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        """Bytes received while the head was incomplete (a head that trickles in)."""
        self._head_size = 0
        """Request line and header fields as parsed (a head that came in one read)."""
        self._in_head = True

    # the timers ------------------------------------------------------------------------

    def _arm(self, seconds: float, on_expiry: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, on_expiry)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_too_slow(self) -> None:
        if self._in_head:
            detail = f"the request line and headers must arrive within {self.header_timeout_s} s"
            self._refuse(408, "Request Timeout", detail, HEAD_POINTER)
        else:  # idle after a response, or the rest of a body the application did not read
            self._body_too_slow()

    def _body_too_slow(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, reason: str, detail: str, pointer: str | None = None) -> None:
        """Answer (when no response is under way) and close."""
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_refusal(status, reason, detail, pointer))
        self.transport.close()

    def _head_too_large(self) -> None:
        detail = f"the request line and headers may hold at most {self.max_head_bytes} bytes"
        self._refuse(431, "Request Header Fields Too Large", detail, HEAD_POINTER)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not an HTTP/1.1 request, as a problem (never
        written into a response already begun), then the connection closed."""
        self._disarm()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.response_started or cycle.response_complete:
            self.transport.write(_refusal(400, "Bad Request", "the request is not valid HTTP/1.1"))
        self.transport.close()

    def _unsupported_upgrade_warning(self) -> None:
        """An ``Upgrade`` the gateway does not speak (it serves no WebSocket): the request is
        served as HTTP, unremarked (uvicorn would log two warnings for each)."""

    # uvicorn's protocol, with the bounds -----------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # the first bytes of the request were read in this very call of data_received
        extensions = self.scope.setdefault("extensions", {})
        extensions[ARRIVAL] = {"monotonic": time.monotonic()}
        self._in_head = True
        self._head_bytes = 0
        self._head_size = 0
        if self._timer is None:  # pipelined: the head's clock starts with its first byte
            self._arm(self.header_timeout_s, self._head_too_slow)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused: the rest is not parsed
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)  # still no complete head: all of it is head
            if self._head_bytes > self.max_head_bytes:
                self._head_too_large()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head_size > self.max_head_bytes:  # a large head that came in one read
            self._head_too_large()
        if self.transport.is_closing():
            return
        self._in_head = False
        self._arm(self.body_timeout_s, self._body_too_slow)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            # the next request's head (or the rest of an unread body) gets its own bound
            self._arm(self.header_timeout_s, self._head_too_slow)
