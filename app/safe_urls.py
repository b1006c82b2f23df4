"""Refusing user-supplied URLs that point inside the network (SSRF), twice.

A URL a client gives (a media input, a ``callback_url``) is checked when the request arrives:
http(s) only, and every address its host resolves to must be public — not loopback,
link-local (which holds the cloud metadata service, 169.254.169.254), private, unique-local,
multicast, reserved or unspecified. The answer is ``422 unsafe_url`` and nothing is stored,
charged or fetched.

Names can be re-pointed between the check and the fetch (DNS rebinding), so the gateway's
client for user URLs checks again when it connects: :class:`GuardedBackend` resolves the host
itself, refuses a non-public address, and connects to the address it checked — never
resolving twice. An IPv6 address that carries an IPv4 address (mapped, compatible, NAT64,
6to4, Teredo) is judged by that IPv4 address. A refusal says what kind of address was found
(loopback, private…), never the address. ``MEDIAGATE_URL_ALLOWLIST`` (hosts, ``host:port``
pairs or CIDR networks) lets trusted internal addresses through, e.g. for tests or an
internal bucket.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
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


_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, by the form it has: mapped
    (``::ffff:a.b.c.d``), translated (``::ffff:0:a.b.c.d``), compatible (``::a.b.c.d``),
    NAT64 with the well-known prefix ``64:ff9b::/96`` or the local-use ``64:ff9b:1::/48``
    (RFC 6052 at /48: the address sits in bytes 6–7 and 9–10), 6to4 (``2002:AABB:CCDD::``)
    and Teredo (server and client). None for any other IPv6 address."""
    value = int(ip)
    if ip in _MAPPED or ip in _TRANSLATED or ip in _COMPATIBLE or ip in _NAT64:
        return [ipaddress.IPv4Address(value & 0xFFFF_FFFF)]
    if ip in _NAT64_LOCAL:
        raw = ip.packed
        return [ipaddress.IPv4Address(raw[6:8] + raw[9:11])]
    if ip in _SIX_TO_FOUR:
        return [ipaddress.IPv4Address((value >> 80) & 0xFFFF_FFFF)]
    if ip in _TEREDO:
        server = ipaddress.IPv4Address((value >> 64) & 0xFFFF_FFFF)
        client = ipaddress.IPv4Address(~value & 0xFFFF_FFFF)
        return [server, client]
    return []


def why_not_public(ip: Address) -> str | None:
    """What kind of non-public address ``ip`` is (never the address itself), or None."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (where cloud metadata services live)"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved, not public"
    return None


class UrlPolicy:
    def __init__(self, allowlist: Iterable[str] = (), resolver: Resolver = resolve) -> None:
        self.hosts: set[str] = set()
        self.endpoints: set[tuple[str, int]] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allowlist:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            endpoint = _ENDPOINT.match(entry)
            if endpoint:
                self.endpoints.add((endpoint.group(1).lower(), int(endpoint.group(2))))
            else:
                self.hosts.add(entry.lower())
        self.resolver = resolver

    def allows_endpoint(self, host: str, port: int) -> bool:
        """The host (any port) or the host and port are on the allowlist by name."""
        host = host.lower().strip("[]")
        return host in self.hosts or (host, port) in self.endpoints

    def refusal(self, address: str) -> str | None:
        """Why the address may not be reached (the kind of address, never the address), or
        None when it may: public, or inside an allowlisted network. An IPv6 address that
        carries an IPv4 address is judged by the IPv4 address(es)."""
        ip: Address = ipaddress.ip_address(address.split("%")[0])
        if any(ip in net for net in self.networks):
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            carried = embedded_ipv4(ip)
            if carried:
                for inner in carried:
                    if not any(inner in net for net in self.networks):
                        why = why_not_public(inner)
                        if why is not None:
                            return f"{why}, as the IPv4 address inside an IPv6 one"
                return None
        return why_not_public(ip)

    async def check(self, url: str, pointer: str | None = None) -> None:
        """Refuse (``UnsafeUrl``) a URL that is not http(s) or reaches a non-public address."""
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError as exc:
            raise UnsafeUrl("the URL is not valid", pointer) from exc
        if parts.scheme not in ("http", "https") or not hostname:
            raise UnsafeUrl("only http and https URLs with a host are accepted", pointer)
        host = hostname.lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise UnsafeUrl("the URL's port is not valid", pointer) from exc
        if self.allows_endpoint(host, port):
            return
        await self.addresses(host, port, pointer)

    async def addresses(self, host: str, port: int, pointer: str | None = None) -> list[str]:
        """The host's addresses, all of them public (or allowed); else ``UnsafeUrl``."""
        literal = True
        try:
            ipaddress.ip_address(host.strip("[]"))
            found = [host.strip("[]")]
        except ValueError:
            literal = False
            try:
                found = await self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise UnsafeUrl(f"{host} does not resolve", pointer) from exc
        if not found:
            raise UnsafeUrl(f"{host} does not resolve", pointer)
        for address in found:
            why = self.refusal(address)
            if why is not None:
                where = "the URL's address is" if literal else f"{host} resolves to"
                raise UnsafeUrl(
                    f"{where} a non-public address ({why}); loopback, private, "
                    "link-local and metadata addresses are refused",
                    pointer,
                )
        return found


_ENDPOINT = re.compile(r"^\[?([^\[\]/]+?)\]?:(\d{1,5})$")


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
        if self.policy.allows_endpoint(host, port):
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
