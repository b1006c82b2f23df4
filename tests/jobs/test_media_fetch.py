"""Media URL fetches: a deadline, a minimum rate and per-tenant slots, against a real HTTP
server on loopback and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from app.blobs import LocalBlobStore
from app.domain.errors import ErrorCode
from app.domain.media import ImageInput
from app.jobs.media_source import (
    FetchLimits,
    FetchSlotsFull,
    MediaFetchTimeout,
    StoredMedia,
)
from app.safe_urls import UrlPolicy, guarded_client
from app.signing import UrlSigner
from app.store.files import FileIndex
from app.store.rate_limits import ConcurrencySlots
from app.store.scripts import Scripts
from tests.utils.deadlines import JOB_S
from tests.utils.raw_server import raw_server

BODY = b"\x89PNG\r\n\x1a\n" + b"x" * 4000


@dataclass
class Origin:
    """A loopback server: ``/fast`` answers at once, ``/trickle`` sends 10 bytes every 0.2 s,
    ``/endless`` sends 1 KB every 0.05 s forever, ``/held`` waits for ``release``."""

    url: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    state = Origin()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ")[1].decode()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\n"
        if path == "/fast":
            writer.write(head + b"content-length: %d\r\n\r\n" % len(BODY) + BODY)
        elif path == "/trickle":
            writer.write(head + b"content-length: %d\r\n\r\n" % len(BODY))
            for i in range(0, len(BODY), 10):
                writer.write(BODY[i : i + 10])
                await writer.drain()
                await asyncio.sleep(0.2)
        elif path == "/endless":
            writer.write(head + b"content-length: 100000000\r\n\r\n")
            while True:
                writer.write(b"y" * 1024)
                await writer.drain()
                await asyncio.sleep(0.05)
        elif path == "/held":
            state.held.set()
            await state.release.wait()
            writer.write(head + b"content-length: %d\r\n\r\n" % len(BODY) + BODY)
        await writer.drain()

    async with raw_server(handle) as url:
        state.url = url
        try:
            yield state
        finally:
            state.release.set()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with guarded_client(UrlPolicy(["127.0.0.1/32"])) as c:
        yield c


def media(
    redis: Redis, client: httpx.AsyncClient, tmp_path: Path, limits: FetchLimits
) -> StoredMedia:
    return StoredMedia(
        FileIndex(redis, file_ttl_s=60, artifact_ttl_s=60),
        LocalBlobStore(tmp_path),
        UrlSigner(b"k" * 32, "http://127.0.0.1", 60),
        client,
        max_bytes=10**9,
        limits=limits,
        slots=ConcurrencySlots(redis, Scripts.register(redis)),
    )


async def test_a_url_that_trickles_is_cut_off_below_the_minimum_rate(
    redis_client: Redis, client: httpx.AsyncClient, origin: Origin, tmp_path: Path
) -> None:
    limits = FetchLimits(timeout_s=600, min_rate_bps=1000, grace_s=0.5)
    source = media(redis_client, client, tmp_path, limits)
    with pytest.raises(MediaFetchTimeout) as cut:
        await source.read(ImageInput(url=f"{origin.url}/trickle"))
    assert cut.value.code is ErrorCode.media_fetch_timeout
    assert "below the minimum of 1000 bytes/s" in cut.value.detail


async def test_a_url_that_never_ends_is_cut_off_at_the_deadline(
    redis_client: Redis, client: httpx.AsyncClient, origin: Origin, tmp_path: Path
) -> None:
    """Fast enough for the minimum rate, but endless: the total deadline ends it."""
    limits = FetchLimits(timeout_s=1.0, min_rate_bps=100, grace_s=0.5)
    source = media(redis_client, client, tmp_path, limits)
    with pytest.raises(MediaFetchTimeout) as cut:
        await source.read(ImageInput(url=f"{origin.url}/endless"))
    assert "did not finish within 1 s" in cut.value.detail


async def test_a_prompt_url_is_read_whole(
    redis_client: Redis, client: httpx.AsyncClient, origin: Origin, tmp_path: Path
) -> None:
    source = media(redis_client, client, tmp_path, FetchLimits(min_rate_bps=1000, grace_s=0.5))
    got = await source.read(ImageInput(url=f"{origin.url}/fast"))
    assert (got.content, got.content_type) == (BODY, "image/png")


async def test_a_kept_alive_connection_closed_under_a_request_is_tried_again(
    redis_client: Redis, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """This server answers a connection's first request and, when a second comes on it,
    closes it without a word: what a server closing an idle connection does as the client
    reuses it (or one that closes after each answer without saying so, read late). The fetch
    is sent again on a new connection and read whole."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: %d\r\n\r\n"
        writer.write(head % len(BODY) + BODY)
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # the next request: closed unanswered

    source = media(redis_client, client, tmp_path, FetchLimits(min_rate_bps=1000, grace_s=0.5))
    async with raw_server(handle) as url:
        first = await source.read(ImageInput(url=f"{url}/a.png"))
        second = await source.read(ImageInput(url=f"{url}/b.png"))
    assert first.content == second.content == BODY
    assert connections == 2


async def test_a_tenant_fetches_only_as_many_urls_at_once_as_its_slots(
    redis_client: Redis, client: httpx.AsyncClient, origin: Origin, tmp_path: Path
) -> None:
    """Tenant t1's one slot is held by a fetch that hangs: its next job is told to wait
    (``FetchSlotsFull``), tenant t2 fetches meanwhile, and t1's slot comes back after."""
    limits = FetchLimits(timeout_s=600, min_rate_bps=0, per_tenant=1)
    source = media(redis_client, client, tmp_path, limits)
    held = ImageInput(url=f"{origin.url}/held")
    fast = ImageInput(url=f"{origin.url}/fast")
    first = asyncio.create_task(source.prefetch("t1", "job_1", [held]))
    await asyncio.wait_for(origin.held.wait(), timeout=JOB_S)
    with pytest.raises(FetchSlotsFull):
        await source.prefetch("t1", "job_2", [fast])
    await source.prefetch("t2", "job_3", [fast])
    assert source.fetched("job_3", fast.url or "") is not None
    origin.release.set()
    await asyncio.wait_for(first, timeout=JOB_S)
    assert source.fetched("job_1", held.url or "") is not None
    await source.prefetch("t1", "job_2", [fast])
    job_media = source.for_job("job_2")
    assert (await job_media.read(fast)).content == BODY
