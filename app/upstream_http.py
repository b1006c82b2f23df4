"""The process's one outbound client to the providers: httpx's API on aiohttp's connection pool.

The adapters speak httpx (and are tested with respx); aiohttp's pool carries the requests,
being the cheaper of the two per request (see docs/performance.md). Two things are this
module's own:

- **Which failure it was.** The aiohttp transport turns every aiohttp connection error into
  ``httpx.ConnectTimeout``, including a server that closed the connection after the request
  went out (``ServerDisconnectedError``) and a connection reset mid-way (``ClientOSError``).
  The adapters read a connect error as "nothing was sent" and record the attempt as not
  accepted, free; a request that may have reached the provider must instead be recorded as
  unanswered, since the provider may run and bill it. :class:`UpstreamTransport` raises what
  happened: ``ConnectError`` / ``ConnectTimeout`` only when no connection was made,
  ``RemoteProtocolError`` for a server that closed without answering, ``ReadError`` for a
  connection that failed once made (the careful reading: it may have carried the request).
- **How long an idle connection is kept** (:data:`UPSTREAM_KEEPALIVE_S`).
- **No cookies.** httpx keeps every cookie a response sets and sends it with the next request
  to that host. One client calls a provider for every tenant and with each of the gateway's
  credentials for it, so a cookie one call was given would ride along on another's; and
  reading every response into the cookie jar cost about 2 % of a synchronous job's CPU.
  :class:`UpstreamClient` keeps none, and nor does the aiohttp session under it
  (:meth:`UpstreamTransport.get_client`), whose own jar would keep a provider's cookies as
  soon as it is reached by name.
- **Plain requests straight to the transport.** Nearly every adapter call is plain: no
  cookies, no authentication flow, not streamed, not following redirects. Such a request is
  built with its URL parsed once per distinct URL (unless it has query parameters of its own,
  which httpx's request building merges) and handed to the transport without httpx's
  authentication, redirect and event-hook layers, which have nothing to do for it, and its
  answer is read whole as it arrives (``UpstreamTransport.exchange``) instead of through a
  response stream. The first saved about 95 µs of CPU per upstream call, a quarter of it;
  the second 1.2–2.5 % of a synchronous job's instructions (docs/performance.md). A body
  httpx would send whole (JSON, bytes, a text, none) is encoded here and the request made
  with its header fields complete, as httpx would complete them (``Host``, the client's
  defaults merged with the call's, the body's framing), instead of httpx merging and
  normalizing them three times over: 3.3 % of a synchronous job's instructions. It carries
  the same method, URL, header fields in the same order, body and timeout as through those
  layers (``tests/net/test_upstream_client.py`` compares the built requests field for field,
  and the two on the wire); any other request takes httpx's own path. Two things of those
  layers are not done on this path, and nothing here uses them: ``response.elapsed`` is not
  set, and httpx's per-request log line (silenced by ``app.logs`` anyway) is not written.
"""

from __future__ import annotations

import functools
from json import dumps as json_dumps
from typing import Any

import aiohttp
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

UPSTREAM_KEEPALIVE_S = 4.0
"""How long an idle upstream connection is kept for reuse: under the 5 s after which common
servers (uvicorn's and Node's defaults among them) close one. A client keeping it as long as
the server, or longer, can send a request just as the server closes the connection; a
submission (a ``POST``, which is never sent twice) then fails with it."""


class UpstreamTransport(AiohttpTransport):
    """``AiohttpTransport`` whose transport errors say whether the request may have gone out
    (see the module docstring), and which can send a request and read its answer whole in one
    step (:meth:`exchange`)."""

    def get_client(self) -> aiohttp.ClientSession:
        """The session ``AiohttpTransport`` makes (a TCP connector with the pool's limits and
        TLS context), with a cookie jar that keeps nothing: aiohttp's own jar would keep what
        a provider's ``Set-Cookie`` sets (from any host with a name) and send it with every
        later request to it, whichever tenant or credential that request is for."""
        if self.client is not None or self.uds:
            return super().get_client()
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,  # httpx's None, no limit: aiohttp's 0
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            local_addr=(self.local_address, 0) if self.local_address else None,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response: httpx.Response = await super().handle_async_request(request)
        except httpx.TransportError as exc:
            precise = _precise(exc, request)
            if precise is exc:
                raise
            raise precise from exc.__cause__
        return response

    async def exchange(self, request: httpx.Request) -> httpx.Response:
        """``request`` sent and its answer read whole: what :meth:`handle_async_request` and
        ``Response.aread`` do together, without the stream between them. The same aiohttp
        call with the same arguments, the URL parsed once per distinct URL and the timeout
        built once per distinct timeout; the body decoded as httpx decodes it (its
        ``Content-Encoding``). A failure while the answer is read says what it was as one
        while it is awaited does (``ReadError`` for a connection lost once made)."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        proxy = self.proxy
        data: bytes | httpx.AsyncByteStream | None
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            data = request.stream  # type: ignore[assignment]
            request.headers.pop("transfer-encoding", None)  # aiohttp frames it
        try:
            with map_aiohttp_exceptions():
                async with self.client.request(
                    request.method,
                    _aiohttp_url(str(request.url)),
                    headers=request.headers,
                    data=data,
                    allow_redirects=False,
                    auto_decompress=False,
                    compress=False,
                    timeout=_client_timeout(
                        timeout.get("connect"), timeout.get("read"), timeout.get("pool")
                    ),
                    server_hostname=request.extensions.get("sni_hostname"),
                    proxy=str(proxy.url) if proxy else None,
                    proxy_auth=aiohttp.BasicAuth(*proxy.auth) if proxy and proxy.auth else None,
                    proxy_headers=proxy.headers if proxy else None,
                ) as answer:
                    body = await answer.read()
        except httpx.TransportError as exc:
            precise = _precise(exc, request)
            if precise is exc:
                raise
            raise precise from exc.__cause__
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if answer.reason:
            extensions["reason_phrase"] = answer.reason.encode()
        response = httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            stream=httpx.ByteStream(body),
            request=request,
            extensions=extensions,
        )
        response.read()  # decoded by its Content-Encoding, as aread would
        return response


@functools.lru_cache(maxsize=4096)
def _aiohttp_url(url: str) -> yarl.URL:
    """What aiohttp makes of a URL string it is given, made once per distinct URL."""
    return yarl.URL(url)


@functools.lru_cache(maxsize=64)
def _client_timeout(
    connect: float | None, read: float | None, pool: float | None
) -> aiohttp.ClientTimeout:
    """httpx's timeouts as ``AiohttpTransport`` gives them to aiohttp (immutable, so kept)."""
    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


def _precise(exc: httpx.TransportError, request: httpx.Request) -> httpx.TransportError:
    cause = exc.__cause__
    message = str(exc)
    # a connect timeout (aiohttp.ConnectionTimeoutError) is httpx.ConnectTimeout already
    if isinstance(cause, aiohttp.ClientConnectorError):  # no connection was made
        return httpx.ConnectError(message, request=request)
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(message or "server disconnected", request=request)
    if isinstance(cause, aiohttp.ClientOSError):  # made, then failed: sent or not, unknown
        return httpx.ReadError(message, request=request)
    return exc


class _Unkept(httpx.Cookies):
    """A cookie jar that stays empty: what responses set is not kept."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    """A URL parsed once (``httpx.URL`` is immutable): the adapters call a few endpoints, and
    each task's status URL for as long as it runs."""
    return httpx.URL(url)


class UpstreamClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` that keeps no cookies and sends plain requests straight to its
    transport (see the module docstring)."""

    _unkept = _Unkept()

    def __init__(self, *, transport: UpstreamTransport, **options: Any) -> None:
        super().__init__(transport=transport, **options)
        self._upstream = transport

    @property
    def cookies(self) -> httpx.Cookies:
        return self._unkept

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("the upstream client keeps no cookies")

    def build_request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        params: Any = None,
        headers: Any = None,
        cookies: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
        extensions: Any = None,
    ) -> httpx.Request:
        parsed = _parsed(url) if isinstance(url, str) else None
        if (
            parsed is None
            or not parsed.is_absolute_url
            or params is not None
            or cookies is not None
            or extensions is not None
            or self.params
        ):
            return super().build_request(
                method,
                url,
                content=content,
                data=data,
                files=files,
                json=json,
                params=params,
                headers=headers,
                cookies=cookies,
                timeout=timeout,
                extensions=extensions,
            )
        extensions = {
            "timeout": _timeout(self.timeout if timeout is httpx.USE_CLIENT_DEFAULT else timeout)
        }
        framed = _framed(content, data, files, json)
        if framed is None:  # a form, files or a stream: encoded by httpx
            merged = httpx.Headers(self.headers)
            if headers:
                merged.update(headers)
            return httpx.Request(
                method,
                parsed,
                content=content,
                data=data,
                files=files,
                json=json,
                headers=merged,
                extensions=extensions,
            )
        body, framing = framed
        request = httpx.Request(
            method,
            parsed,
            headers=_fields(method.upper(), parsed, self.headers, headers, framing),
            stream=httpx.ByteStream(body),
            extensions=extensions,
        )
        request.read()
        return request

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        plain = (
            not stream
            and auth is httpx.USE_CLIENT_DEFAULT
            and follow_redirects is httpx.USE_CLIENT_DEFAULT
            and self.auth is None
            and not self.follow_redirects
            and not any(self.event_hooks.values())
            and "timeout" in request.extensions
            and not self.is_closed
        )
        if not plain:
            return await super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        try:
            return await self._upstream.exchange(request)
        except httpx.RequestError as exc:
            exc.request = request  # as httpx's own path attaches it
            raise


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Methods httpx gives a ``Content-Length: 0`` when they carry no body and no framing."""
_FRAMED = frozenset({b"content-length", b"transfer-encoding"})


def _framed(
    content: Any, data: Any, files: Any, json: Any
) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """A body httpx would send whole (JSON, bytes, a text, none) and the headers it would add
    for it, in its order (a bodiless one's are :func:`_fields`'s); None for any other body (a
    form, files, a stream), which httpx encodes."""
    if data is not None or files is not None:
        return None
    if json is not None:
        if content is not None:
            return None
        # as httpx.encode_json writes it
        text = json_dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        encoded = text.encode("utf-8")
        return encoded, [
            (b"Content-Length", str(len(encoded)).encode()),
            (b"Content-Type", b"application/json"),
        ]
    if isinstance(content, bytes | str):  # as httpx.encode_content writes it
        body = content.encode("utf-8") if isinstance(content, str) else content
        return body, [(b"Content-Length", str(len(body)).encode())] if body else []
    if content is None:
        return b"", []
    return None


def _fields(
    method: str,
    url: httpx.URL,
    defaults: httpx.Headers,
    headers: Any,
    framing: list[tuple[bytes, bytes]],
) -> list[tuple[bytes, bytes]]:
    """The header fields httpx would send, in its order: ``Host`` (and a bodiless request's
    ``Content-Length: 0``) first unless given, the client's defaults with the call's own
    replacing those of the same name, then the body's framing unless given
    (``Headers.update``, ``Request._prepare``)."""
    own = httpx.Headers(headers).raw if headers else []
    replaced = {key.lower() for key, _ in own}
    fields = [field for field in defaults.raw if field[0].lower() not in replaced]
    fields += own
    present = {key.lower() for key, _ in fields}
    fields += [field for field in framing if field[0].lower() not in present]
    auto = [] if b"host" in present else [(b"Host", url.netloc)]
    if not framing and method in _BODY_METHODS and not present & _FRAMED:
        auto.append((b"Content-Length", b"0"))  # a bodiless POST, PUT or PATCH
    return auto + fields if auto else fields


def _timeout(value: Any) -> dict[str, float | None]:
    """A request's timeouts as httpx's request extensions carry them."""
    if isinstance(value, httpx.Timeout):
        return value.as_dict()
    if value is None or isinstance(value, int | float):
        return dict(_scalar_timeout(value))
    return httpx.Timeout(value).as_dict()


@functools.lru_cache(maxsize=64)
def _scalar_timeout(value: float | None) -> dict[str, float | None]:
    """One number of seconds (or none) for every phase, made once per value (copied out)."""
    return httpx.Timeout(value).as_dict()


def upstream_client() -> httpx.AsyncClient:
    """The process's one outbound client for provider calls."""
    limits = httpx.Limits(
        max_connections=512, max_keepalive_connections=256, keepalive_expiry=UPSTREAM_KEEPALIVE_S
    )
    return UpstreamClient(
        transport=UpstreamTransport(limits=limits, trust_env=False),
        timeout=httpx.Timeout(60.0, connect=5.0),
        follow_redirects=False,
    )
