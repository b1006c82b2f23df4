"""``HEAD`` on every ``GET`` route, and the ``Allow`` header of a ``405``.

``HEAD`` (RFC 9110 §9.3.2) is the ``GET`` of the same URL without its content: the same status
and header fields (``Content-Type``, the ``Content-Length`` of the body the ``GET`` would
send, ``ETag``, ``Cache-Control``, ``Location``, ``Retry-After``…), errors included, and no
body. :class:`HeadAsGet` gives it to every route at once: it is the application's outermost
layer (outside Starlette's server-error layer too, so that even an unexpected ``500`` goes
out without a body) and hands a ``HEAD`` on as the ``GET`` it asks about, to the request
metrics, the body limit, the fast lane (``app.api.fast_routes``) and FastAPI's routes alike.
Authentication, the tenant's rate limit and the metrics therefore work as for the ``GET``: a
``HEAD`` counts as one request. The request metrics and the access log still call it
``HEAD`` (they read :data:`HEAD_AS_GET`). No route knows of ``HEAD``, and the OpenAPI
document lists only the ``GET`` operations (``HEAD`` is implied by ``GET`` in HTTP).

The body is dropped here, not left to the server (uvicorn drops it too, but an application
called in-process, as the tests call it through ``httpx.ASGITransport``, gets no such
help): when the answer's head (``http.response.start``) comes, it is passed on at once
followed by an empty, final body, and everything the application sends after it is dropped.
A streamed answer stops there without being read: the server answers the application's next
``receive`` with ``http.disconnect`` once the response is complete (ASGI), as it would for a
client that left, and Starlette's ``StreamingResponse`` stops its stream on that. So a
``HEAD`` of an artifact opens the blob (that is where its length and ``ETag`` come from: a
file opened, or one request to the object store whose answer is dropped unread) but reads
none of it, and a ``HEAD`` of an event stream ends after its headers, its stream slot given
back as for a client that left.

A ``GET`` costs one call and one comparison more: ``__call__`` is a plain function that
returns the next layer's coroutine, so no coroutine of its own is made.

A method a path does not take is answered ``405`` as a problem (``app.api.problems``), with
the ``Allow`` header of :func:`allowed_methods`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEAD_AS_GET = "mediagate.head_as_get"
"""In the scope of a ``HEAD`` handed on as a ``GET``; the request metrics read it."""

_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class HeadAsGet:
    """The ASGI layer; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope.get("method") == "HEAD":
            return self._head(scope, receive, send)
        return self.app(scope, receive, send)

    async def _head(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            # the body, and anything after it, stays here

        # A copy: the server keeps the scope it made and reads its method (uvicorn does).
        await self.app({**scope, "method": "GET", HEAD_AS_GET: True}, receive, send_head)


def allowed_methods(scope: Scope) -> str:
    """The ``Allow`` header of a ``405`` for the request of ``scope``: every method some route
    of the application takes at its path (``HEAD`` wherever ``GET`` is), in the usual order.

    Starlette names only the first route that matched the path, so a path served by two
    routes (``GET`` and ``PATCH /admin/tenants/{tenant_id}``) would name one method, and
    never ``HEAD``. A mounted application without a method list (the static assets of the
    documentation pages) serves ``GET`` and ``HEAD``."""
    methods: set[str] = set()
    for route in scope["app"].router.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or {"GET"}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(_ordered(methods))


def _ordered(methods: Iterable[str]) -> list[str]:
    def rank(method: str) -> tuple[int, str]:
        return (_ORDER.index(method) if method in _ORDER else len(_ORDER), method)

    return sorted(methods, key=rank)
