"""Request metrics and one structured log line per request, as a pure ASGI middleware
(cheaper than Starlette's BaseHTTPMiddleware).

The line carries ``request_id`` (the client's ``X-Request-Id`` when it sends a sane one,
else a new one; echoed in the response), ``tenant_id``, ``job_id``, ``operation``,
``provider`` (set on ``request.state`` by the dependencies and routes that know them) and
``latency_ms``.
"""

from __future__ import annotations

import logging
import os
import re
import time

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.methods import HEAD_AS_GET
from app.metrics import Metrics

log = logging.getLogger("mediagate.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""A client's request id, matched whole (``fullmatch``): ``$`` would let a trailing newline
into the answer's header and the log line."""


class RequestMetrics:
    """``mediagate_http_requests_total`` and ``…_duration_seconds`` by route template; a
    ``HEAD``, which reaches this layer as its ``GET`` (``app.api.methods``), as ``HEAD``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = _request_id(scope)

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = (
                route.path
                if isinstance(route, BaseRoute) and hasattr(route, "path")
                else "unmatched"
            )
            method = "HEAD" if HEAD_AS_GET in scope else scope["method"]
            seconds = time.perf_counter() - started
            self.metrics.http_request(template, method, status, seconds)
            if log.isEnabledFor(logging.INFO):
                state = scope.get("state") or {}
                path_params = scope.get("path_params") or {}
                log.info(
                    "%s %s %s",
                    method,
                    template,
                    status,
                    extra={
                        "request_id": request_id,
                        "tenant_id": state.get("tenant_id"),
                        "job_id": state.get("job_id") or path_params.get("job_id"),
                        "operation": state.get("operation"),
                        "provider": state.get("provider"),
                        "latency_ms": round(seconds * 1000, 2),
                    },
                )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            given = str(value.decode("latin-1"))
            if _REQUEST_ID.fullmatch(given):
                return given
    return new_request_id()


def new_request_id() -> str:
    """What ``uuid.uuid4().hex`` gives (16 random bytes, the version and variant bits set),
    without the ``UUID`` object: a quarter of its instructions."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    return raw.hex()
