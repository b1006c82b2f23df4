"""The SSRF guard: user URLs reaching non-public addresses are refused, at the edge and again
when connecting (so a name re-pointed after the check does not get through)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from app.domain.errors import ErrorCode
from app.safe_urls import UnsafeUrl, UrlPolicy, guarded_client


async def fixed(addresses: dict[str, list[str]]) -> UrlPolicy:
    async def resolver(host: str, port: int) -> list[str]:
        return addresses[host]

    return UrlPolicy(resolver=resolver)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.png",
        "http://[::1]/a.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/a.png",
        "http://192.168.1.10/a.png",
        "http://172.16.0.1/a.png",
        "http://[fd00::1]/a.png",
        "http://[fe80::1]/a.png",
        "http://[::ffff:127.0.0.1]/a.png",
        "http://[::127.0.0.1]/a.png",  # IPv4-compatible
        "http://[::ffff:0:a00:1]/a.png",  # IPv4-translated form of 10.0.0.1 (::ffff:0:0:0/96)
        "http://[64:ff9b::7f00:1]/a.png",  # NAT64, well-known prefix
        "http://[64:ff9b::a9fe:a9fe]/a.png",  # NAT64 of the metadata service
        "http://[64:ff9b:1:7f00:1::]/a.png",  # NAT64, local-use prefix (RFC 8215) at /48
        "http://[2002:7f00:1::]/a.png",  # 6to4 of 127.0.0.1
        "http://[2002:a9fe:a9fe::1]/a.png",  # 6to4 of 169.254.169.254
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/a.png",  # Teredo, client 127.0.0.1
        "http://[::1/a.png",  # unclosed IPv6 literal
        "http://0.0.0.0/a.png",
        "http://224.0.0.1/a.png",
        "http://localhost/a.png",
        "file:///etc/passwd",
        "gopher://example.com/",
        "ftp://example.com/a.png",
        "http:///a.png",
    ],
)
async def test_non_public_or_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl) as refused:
        await UrlPolicy().check(url, "/image/url")
    assert refused.value.code is ErrorCode.unsafe_url
    assert refused.value.status == 422


async def test_a_name_resolving_to_any_private_address_is_refused() -> None:
    policy = await fixed({"mixed.test": ["93.184.216.34", "10.1.2.3"]})
    with pytest.raises(UnsafeUrl, match="mixed.test resolves to a non-public address") as caught:
        await policy.check("https://mixed.test/a.png")
    assert "(private)" in caught.value.detail  # why, but never the internal address itself
    assert "10.1.2.3" not in caught.value.detail


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.2", "loopback"),
        ("169.254.169.254", "link-local"),
        ("192.168.0.7", "private"),
        ("::ffff:10.9.8.7", "private, as the IPv4 address inside an IPv6 one"),
        ("64:ff9b::a00:1", "private, as the IPv4 address inside an IPv6 one"),
        ("2002:7f00:1::5", "loopback, as the IPv4 address inside an IPv6 one"),
    ],
)
async def test_the_refusal_says_why_without_the_resolved_address(address: str, why: str) -> None:
    policy = await fixed({"inside.test": [address]})
    with pytest.raises(UnsafeUrl) as caught:
        await policy.check("http://inside.test/a.png", "/image/url")
    assert why in caught.value.detail
    assert address not in caught.value.detail


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::808:808]/a.png",  # NAT64 of 8.8.8.8
        "http://[64:ff9b:1:808:8:800::]/a.png",  # local-use NAT64 of 8.8.8.8 at /48
        "http://[2002:808:808::1]/a.png",  # 6to4 of 8.8.8.8
        "http://[::ffff:8.8.8.8]/a.png",
    ],
)
async def test_ipv6_forms_of_public_ipv4_addresses_pass(url: str) -> None:
    await UrlPolicy().check(url)


async def test_public_addresses_pass() -> None:
    policy = await fixed({"cdn.test": ["93.184.216.34", "2606:2800:220:1::1"]})
    await policy.check("https://cdn.test/a.png")
    await policy.check("http://93.184.216.34:8080/a.png")


async def test_the_allowlist_lets_named_hosts_and_networks_through() -> None:
    policy = UrlPolicy(["files.internal", "10.20.0.0/16"])
    await policy.check("http://files.internal/a.png")
    await policy.check("http://10.20.3.4/a.png")
    with pytest.raises(UnsafeUrl):
        await policy.check("http://10.21.3.4/a.png")


async def test_an_allowlisted_host_and_port_lets_only_that_port_through() -> None:
    policy = UrlPolicy(["127.0.0.1:8000", "[::1]:9000"])
    await policy.check("http://127.0.0.1:8000/v1/files/x/content")
    await policy.check("http://[::1]:9000/a.png")
    for url in ("http://127.0.0.1:6379/", "http://127.0.0.1/a.png", "http://[::1]:9001/"):
        with pytest.raises(UnsafeUrl):
            await policy.check(url)


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP server on loopback that counts the connections it receives."""
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port, accepted
    server.close()
    await server.wait_closed()


async def test_a_name_rebound_to_loopback_after_the_check_is_refused_on_connect(
    listener: tuple[int, list[int]],
) -> None:
    port, accepted = listener
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def rebinding(host: str, _port: int) -> list[str]:
        return next(answers)

    policy = UrlPolicy(resolver=rebinding)
    url = f"http://rebind.test:{port}/a.png"
    await policy.check(url)  # the first answer is public
    async with guarded_client(policy) as client:
        with pytest.raises(httpx.ConnectError, match="non-public"):
            await client.get(url)
    assert accepted == []


async def test_the_guarded_client_reaches_allowed_addresses(
    listener: tuple[int, list[int]],
) -> None:
    port, accepted = listener
    async with guarded_client(UrlPolicy(["127.0.0.1/32"])) as client:
        with pytest.raises(httpx.HTTPError):  # the listener hangs up without answering
            await client.get(f"http://127.0.0.1:{port}/a.png")
    assert accepted == [1]
