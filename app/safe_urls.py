"""Refusing user-supplied URLs that point inside the network (SSRF), twice.

A URL a client gives (a media input, a ``callback_url``) is checked when the request arrives:
http(s) only, and every address its host resolves to must be public — not loopback,
link-local (which holds the cloud metadata service, 169.254.169.254), private, unique-local,
multicast, reserved or unspecified. The answer is ``422 unsafe_url`` and nothing is stored,
charged or fetched.

Names can be re-pointed between the check and the fetch (DNS rebinding), so the gateway's
client for user URLs checks again when it connects: :class:`GuardedBackend` resolves the host
itself, refuses a non-public address, and connects to the address it checked — never
resolving twice. ``MEDIAGATE_URL_ALLOWLIST`` (hosts or CIDR networks) lets trusted internal
addresses through, e.g. for tests or an internal bucket.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

from app.domain.errors import ErrorCode, InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UnsafeUrl(InvalidRequest):
    def __init__(self, detail: str, pointer: str | None = None) -> None:
        super().__init__(detail, code=ErrorCode.unsafe_url, pointer=pointer, status=422)


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class UrlPolicy:
    def __init__(self, allowlist: Iterable[str] = (), resolver: Resolver = resolve) -> None:
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allowlist:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower())
        self.resolver = resolver

    def address_allowed(self, address: str) -> bool:
        ip: Address = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.networks):
            return True
        return ip.is_global and not ip.is_multicast

    async def check(self, url: str, pointer: str | None = None) -> None:
        """Refuse (``UnsafeUrl``) a URL that is not http(s) or reaches a non-public address."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UnsafeUrl("only http and https URLs with a host are accepted", pointer)
        host = parts.hostname.lower()
        if host in self.hosts:
            return
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise UnsafeUrl("the URL's port is not valid", pointer) from exc
        await self.addresses(host, port, pointer)

    async def addresses(self, host: str, port: int, pointer: str | None = None) -> list[str]:
        """The host's addresses, all of them public (or allowed); else ``UnsafeUrl``."""
        try:
            ipaddress.ip_address(host.strip("[]"))
            found = [host.strip("[]")]
        except ValueError:
            try:
                found = await self.resolver(host, port)
            except OSError as exc:
                raise UnsafeUrl(f"{host} does not resolve", pointer) from exc
        if not found:
            raise UnsafeUrl(f"{host} does not resolve", pointer)
        refused = [a for a in found if not self.address_allowed(a)]
        if refused:
            raise UnsafeUrl(
                f"{host} resolves to a non-public address ({refused[0]}); "
                "loopback, private, link-local and metadata addresses are refused",
                pointer,
            )
        return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses the policy allows, checked at
    connect time on the very address it dials."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host.lower() in self.policy.hosts:
            address = host
        else:
            try:
                address = (await self.policy.addresses(host, port))[0]
            except UnsafeUrl as exc:
                raise httpcore.ConnectError(exc.detail) from exc
        return await self.inner.connect_tcp(
            address, port, timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through user URLs")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_client(policy: UrlPolicy, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """An HTTP client for user-supplied URLs: no redirects, no proxies from the environment,
    every connection checked by :class:`GuardedBackend`."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its pool without a way to pass a network backend; swap in one that has it.
    transport._pool = httpcore.AsyncConnectionPool(  # noqa: SLF001
        ssl_context=httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=GuardedBackend(policy),
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout_s, connect=5.0),
        follow_redirects=False,
        trust_env=False,
    )
