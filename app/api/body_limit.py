"""Request bodies: bounded while they are read, and never read for an unknown API key.

A pure ASGI layer in front of the routes. For every request it finds the route's
:class:`BodyRule` (by method and path) and then:

1. a declared ``Content-Length`` over the rule's limit is answered ``413 payload_too_large`` at
   once, before a byte of the body is read;
2. on a route that takes a tenant's API key, a body that is large or of unknown length
   (``Transfer-Encoding: chunked``) is read only after the key is known: an unknown key gets
   ``401`` without the body being read;
3. the body is counted as the application reads it; past the limit the read fails, whatever
   the application was about to answer is dropped and the client gets ``413``;
4. a ``multipart/form-data`` body has its parts counted as they stream by; past the rule's
   cap the read fails the same way.

Nothing is buffered here: the layer only counts. The limits follow from the media limit (see
:func:`body_rules`): an operation's JSON may hold each of its media inputs as base64 at the
media limit (or at the larger limit a provider's document gives that input: Everypixel's
100 MB videos for video keywording), plus a small allowance for everything else, and nothing
far beyond. Uploads (``POST /v1/files``) keep the media limit. The unread
rest of a refused body is discarded by the server while it keeps the connection (uvicorn drops
body bytes that arrive after the response is complete), so a refused body costs no memory.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import WHOLE_BODY, problem_response
from app.domain.errors import ErrorCode, GatewayError, InvalidRequest
from app.domain.operations import PARAMS, ROUTES, Operation

SMALL_BODY_BYTES = 64 * 1024
"""Bodies of routes without media (admin, cancel, generate…), and the allowance an operation
has on top of its media for prompts, options and ``metadata``. Also the size under which a
body is read before the API key is checked (the routes' own authentication then runs)."""

MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Boundaries and part headers of an upload, on top of the file itself."""

MAX_UPLOAD_PARTS = 4
"""Parts of a ``POST /v1/files`` body: the file, and room for a few small fields."""

CALLBACK_BODY_BYTES = 1024 * 1024
"""Upstream callbacks: the route refuses more than 64 KiB itself (after checking the token,
so that it can count refusals per provider); this only stops bodies far beyond."""

BATCH_ITEMS_BYTES = 8 * 1024 * 1024
"""``POST /v1/batches``: room for 10,000 items by URL or ``file_id``, on top of which the
body may carry one media input's worth of inline data."""

SANDBOX_BODY_BYTES = 101 * 1024 * 1024
"""Sandbox emulators: the largest upload a provider document allows (100 MB), so emulators
still give their own documented answers to oversized inputs."""

Authenticate = Callable[[Scope], Awaitable[GatewayError | None]]
"""Why the request's API key is refused (``401``/``403``), or None when it is accepted."""


@dataclass(frozen=True)
class BodyRule:
    limit: int
    """Bytes a body may have."""
    tenant_key: bool = False
    """The route takes a tenant's API key: check it before reading a large body."""
    max_parts: int | None = None
    """Parts a ``multipart/form-data`` body may have (None: no cap beyond ``limit``)."""


def base64_size(raw_bytes: int) -> int:
    return 4 * -(-raw_bytes // 3)


def inline_limit(media: int, max_media_bytes: int) -> int:
    """A JSON body with ``media`` base64 inputs at the media limit (with 1/16 spare for a
    ``data:`` prefix and JSON escaping of ``/``), plus :data:`SMALL_BODY_BYTES`."""
    per_input = base64_size(max_media_bytes) * 17 // 16 + 256
    return media * per_input + SMALL_BODY_BYTES


class BodyRules:
    """The rule of each route, by method and path."""

    def __init__(
        self, exact: dict[tuple[str, str], BodyRule], prefixes: Iterable[tuple[str, BodyRule]]
    ) -> None:
        self.exact = exact
        self.prefixes = list(prefixes)
        self.default = BodyRule(SMALL_BODY_BYTES)

    def find(self, method: str, path: str) -> BodyRule:
        rule = self.exact.get((method, path.rstrip("/") or "/"))
        if rule is not None:
            return rule
        for prefix, found in self.prefixes:
            if path.startswith(prefix):
                return found
        return self.default


def body_rules(
    max_media_bytes: int, larger: Mapping[Operation, Mapping[str, int]] | None = None
) -> BodyRules:
    """The rules, with ``larger``: per operation, inputs that may be larger than the media
    limit (``app.jobs.media_rules.field_byte_limits``)."""
    larger = larger or {}
    exact: dict[tuple[str, str], BodyRule] = {}
    for operation, route in ROUTES.items():
        wider = larger.get(operation, {})
        others = len(PARAMS[operation].media_fields) - len(wider)
        limit = inline_limit(others, max_media_bytes) + sum(
            inline_limit(1, most) - SMALL_BODY_BYTES for most in wider.values()
        )
        exact["POST", route] = BodyRule(limit, tenant_key=True)
    exact["POST", "/v1/files"] = BodyRule(
        max_media_bytes + MULTIPART_OVERHEAD_BYTES, tenant_key=True, max_parts=MAX_UPLOAD_PARTS
    )
    exact["POST", "/v1/batches"] = BodyRule(
        inline_limit(1, max_media_bytes) + BATCH_ITEMS_BYTES, tenant_key=True
    )
    prefixes = [
        ("/v1/providers/", BodyRule(CALLBACK_BODY_BYTES)),
        ("/_sandbox/", BodyRule(SANDBOX_BODY_BYTES)),
        ("/v1/", BodyRule(SMALL_BODY_BYTES, tenant_key=True)),
    ]
    return BodyRules(exact, prefixes)


class BodyTooLarge(HTTPException):
    """Raised into the application's read; an HTTPException so that the framework passes it
    on instead of calling it a parse error (the layer answers the client either way)."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


def too_large(detail: str) -> GatewayError:
    return InvalidRequest(detail, code=ErrorCode.payload_too_large, pointer=WHOLE_BODY, status=413)


class BodyLimit:
    """The ASGI layer; see the module docstring."""

    def __init__(self, app: ASGIApp, rules: BodyRules, authenticate: Authenticate) -> None:
        self.app = app
        self.rules = rules
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        rule = self.rules.find(scope["method"], scope["path"])
        declared, boundary = _framing(scope)
        if declared is not None and declared > rule.limit:
            await _answer(scope, send, too_large(_over(rule.limit)))
            return
        if rule.tenant_key and (declared is None or declared > SMALL_BODY_BYTES):
            refused = await self.authenticate(scope)
            if refused is not None:
                await _answer(scope, send, refused)
                return
        await _Counted(self.app, rule, boundary)(scope, receive, send)


class _Counted:
    """One request whose body is counted as the application reads it."""

    def __init__(self, app: ASGIApp, rule: BodyRule, boundary: bytes | None) -> None:
        self.app = app
        self.rule = rule
        self.parts = _PartCounter(boundary) if boundary and rule.max_parts else None
        self.read = 0
        self.refusal: GatewayError | None = None
        self.started = False
        self.replaced = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive() -> Message:
            if self.refusal is not None:
                raise BodyTooLarge(self.refusal.detail)
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                self.read += len(chunk)
                if self.read > self.rule.limit:
                    self.refusal = too_large(_over(self.rule.limit))
                elif self.parts is not None and self.parts.feed(chunk) > (self.rule.max_parts or 0):
                    self.refusal = too_large(
                        f"a multipart body may have at most {self.rule.max_parts} parts"
                    )
                if self.refusal is not None:
                    raise BodyTooLarge(self.refusal.detail)
            return message

        async def guarded_send(message: Message) -> None:
            if self.replaced:
                return  # the rest of the application's own answer
            if self.refusal is not None and not self.started:
                # Whatever the application made of the failed read, the answer is 413.
                self.started = self.replaced = True
                await _answer(scope, send, self.refusal)
                return
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if self.started:
                raise
            assert self.refusal is not None
            self.started = True
            await _answer(scope, send, self.refusal)


class _PartCounter:
    """Counts multipart delimiters (``--boundary`` after a line break) across chunks."""

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"\r\n--" + boundary
        self.tail = b"\r\n"  # the first delimiter may open the body without a line break
        self.seen = 0

    def feed(self, chunk: bytes) -> int:
        """Parts begun so far (the closing delimiter counts too, so at most one over)."""
        window = self.tail + chunk
        self.seen += window.count(self.delimiter)
        self.tail = window[-(len(self.delimiter) - 1) :]
        return self.seen - 1 if self.seen else 0


_BOUNDARY = re.compile(rb'boundary="?([^";,\s]{1,200})"?', re.IGNORECASE)


def _framing(scope: Scope) -> tuple[int | None, bytes | None]:
    """The declared ``Content-Length`` (None when absent or chunked) and, for multipart
    bodies, the boundary."""
    declared: int | None = None
    boundary: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            digits = value.strip()
            # More digits than any limit: over it (and never a huge int() conversion).
            declared = int(digits) if digits.isdigit() and len(digits) <= 15 else 10**15
        elif name == b"content-type" and value[:19].lower() == b"multipart/form-data":
            match = _BOUNDARY.search(value)
            boundary = match.group(1) if match else None
    return declared, boundary


def _over(limit: int) -> str:
    return f"the request body is larger than this route accepts ({limit} bytes)"


async def _answer(scope: Scope, send: Send, error: GatewayError) -> None:
    response = problem_response(error, scope["path"], error.headers or None)

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
