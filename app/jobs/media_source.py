"""Resolving a job's media references for adapters: uploaded files and client URLs.

A client's URL is fetched under three bounds, so that one tenant's slow URLs cannot hold what
other tenants' jobs need (see ``docs/security-fairness.md``):

- a total deadline (``media_fetch_timeout_s``) from the request to the last byte;
- a minimum rate: once ``media_fetch_grace_s`` has passed, the bytes received must keep up
  with ``media_fetch_min_rate_bps`` averaged from the start. A URL that trickles is cut off
  the moment it falls behind, not at the deadline;
- per-tenant concurrency: a job fetches its inputs only while it holds one of its tenant's
  ``tenant_max_concurrent_fetches`` slots (Redis, shared by every worker). The runner fetches
  *before* it takes an upstream budget, and a job that finds its tenant's slots taken goes
  back to the queue: it holds neither a worker task nor an upstream slot while it waits.

A request that meets a connection closed under it before any answer (a kept-alive connection
the server was closing as the request went out: ``RemoteProtocolError``, ``ReadError``,
``WriteError``) is sent once more on a new connection: a ``GET`` is safe to repeat, and a
server may close an idle connection at any moment without saying so beforehand.

A URL's bytes are capped at ``max_media_bytes``, or at what the provider's document lets the
input be where the runner says so (``prefetch``'s ``max_bytes``: Everypixel's 100 MB videos).

What an adapter made of an input for its provider (a recording converted to WAV) is stored as
a file of the job's tenant, under its storage quota and with the files' retention
(:meth:`JobMedia.publish`), and handed to the upstream as a signed URL.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from app.blobs import BlobStore
from app.domain.errors import ErrorCode, GatewayError
from app.domain.media import MediaInput
from app.domain.models import new_file_id
from app.jobs.storage import Storage
from app.providers.base import Media
from app.signing import UrlSigner
from app.store.files import BlobMeta, FileIndex
from app.store.rate_limits import ConcurrencySlots

MAX_FAILURES_KEPT = 1024
FETCH_SLOT_MARGIN_S = 10.0
"""A fetch slot outlives the fetch deadline by this much, then lapses (a crashed worker)."""


CLOSED_BEFORE_ANSWER = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
"""A connection closed under a request before any answer came."""


class MediaUnavailable(GatewayError):
    """An input cannot be read any more (file expired, URL gone): the job fails, not retried."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, ErrorCode.invalid_media, 422)


class MediaFetchTimeout(GatewayError):
    """A media URL was too slow: past the deadline, or below the minimum rate."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, ErrorCode.media_fetch_timeout, 422)


class FetchSlotsFull(Exception):
    """Every fetch slot of the job's tenant is taken: try the job again shortly."""


@dataclass(frozen=True)
class FetchLimits:
    timeout_s: float = 30.0
    min_rate_bps: int = 32 * 1024
    grace_s: float = 2.0
    per_tenant: int = 4

    def cutoff(self, started: float, received: int) -> float:
        """The loop time at which a fetch that has ``received`` bytes so far is cut off."""
        end = started + self.timeout_s
        if self.min_rate_bps > 0:
            end = min(end, started + self.grace_s + received / self.min_rate_bps)
        return end


class StoredMedia:
    """The gateway's ``MediaSource``: files from the blob store, URLs fetched with a size cap.

    Files this process stored recently, and URLs it fetched for a job, are kept in memory
    (bounded by ``cache_bytes``), so a job run right after its upload (``Prefer: wait``) does
    not read back what it just wrote and a fetched input is not fetched again by the step.
    """

    def __init__(
        self,
        files: FileIndex,
        blobs: BlobStore,
        signer: UrlSigner,
        client: httpx.AsyncClient,
        max_bytes: int,
        cache_bytes: int = 64 * 1024 * 1024,
        *,
        limits: FetchLimits | None = None,
        slots: ConcurrencySlots | None = None,
        storage: Storage | None = None,
    ) -> None:
        self.storage = storage
        self.files = files
        self.blobs = blobs
        self.signer = signer
        self.client = client
        self.max_bytes = max_bytes
        self.cache_bytes = cache_bytes
        self.limits = limits or FetchLimits()
        self.slots = slots
        self._recent: OrderedDict[str, Media] = OrderedDict()
        self._recent_size = 0
        self._failed: OrderedDict[str, GatewayError] = OrderedDict()

    def remember(self, file_id: str, media: Media) -> None:
        old = self._recent.pop(file_id, None)
        if old is not None:
            self._recent_size -= len(old.content)
        self._recent[file_id] = media
        self._recent_size += len(media.content)
        while self._recent_size > self.cache_bytes and self._recent:
            _, evicted = self._recent.popitem(last=False)
            self._recent_size -= len(evicted.content)

    def forget(self, file_id: str) -> None:
        """Drop a file :meth:`remember` kept (deleted: no job reads it)."""
        old = self._recent.pop(file_id, None)
        if old is not None:
            self._recent_size -= len(old.content)

    async def read(self, ref: MediaInput) -> Media:
        if ref.file_id is not None:
            return await self._read_file(ref.file_id)
        if ref.artifact_id is not None:
            return await self._read_artifact(ref.artifact_id)
        assert ref.url is not None
        return await self._download(ref.url)

    def public_url(self, ref: MediaInput) -> str:
        if ref.url is not None:
            return ref.url
        if ref.artifact_id is not None:
            return self.signer.sign(f"/v1/artifacts/{ref.artifact_id}")
        assert ref.file_id is not None
        return self.signer.sign(f"/v1/files/{ref.file_id}/content")

    def for_job(self, job_id: str, tenant_id: str = "") -> JobMedia:
        """The job's view: URLs :meth:`prefetch` fetched for it come from memory."""
        return JobMedia(self, job_id, tenant_id)

    async def publish(self, tenant_id: str, media: Media) -> str:
        """Store ``media`` as a file of the tenant; the signed URL an upstream fetches it at."""
        if self.storage is None:
            raise RuntimeError("publishing media needs the byte storage")
        meta = BlobMeta(
            id=new_file_id(),
            tenant=tenant_id,
            content_type=media.content_type,
            size=len(media.content),
        )
        await self.storage.store_files(tenant_id, [(meta, media.content, None)])
        self.remember(meta.id, media)
        return self.signer.sign(f"/v1/files/{meta.id}/content")

    async def prefetch(
        self,
        tenant_id: str,
        job_id: str,
        refs: Iterable[MediaInput],
        max_bytes: Mapping[str, int] | None = None,
    ) -> None:
        """Fetch the job's URL inputs under one of its tenant's fetch slots, each at most
        ``max_bytes[url]`` long where given (else ``max_media_bytes``).

        Raises ``FetchSlotsFull`` when the tenant has none free, ``MediaFetchTimeout`` or
        ``MediaUnavailable`` when an input cannot be fetched; the job's reads of that input
        then raise the same error at once (:meth:`fetched`), not fetching it again."""
        urls = list(dict.fromkeys(ref.url for ref in refs if ref.url is not None))
        urls = [url for url in urls if self.fetched(job_id, url) is None]
        if not urls:
            return
        key = f"fetches:{{{tenant_id}}}"
        ttl_s = self.limits.timeout_s + FETCH_SLOT_MARGIN_S
        if self.slots is not None and not await self.slots.acquire(
            key, job_id, self.limits.per_tenant, ttl_s
        ):
            raise FetchSlotsFull(tenant_id)
        try:
            caps = max_bytes or {}
            fetched = await asyncio.gather(
                *(self._download(url, caps.get(url)) for url in urls), return_exceptions=True
            )
        finally:
            if self.slots is not None:
                await self.slots.release(key, job_id)
        failure: GatewayError | None = None
        for url, media in zip(urls, fetched, strict=True):
            if isinstance(media, GatewayError):
                failure = failure or media
                self._failed[_url_key(job_id, url)] = media
                while len(self._failed) > MAX_FAILURES_KEPT:
                    self._failed.popitem(last=False)
            elif isinstance(media, BaseException):
                raise media
            else:
                self.remember(_url_key(job_id, url), media)
        if failure is not None:
            raise failure

    def fetched(self, job_id: str, url: str) -> Media | None:
        """What :meth:`prefetch` fetched from ``url`` for the job, while kept in memory (and
        the error it met, raised again)."""
        failed = self._failed.get(_url_key(job_id, url))
        if failed is not None:
            raise failed
        return self._recent.get(_url_key(job_id, url))

    async def _read_file(self, file_id: str) -> Media:
        recent = self._recent.get(file_id)
        if recent is not None:
            return recent
        meta = await self.files.file(file_id)
        content = await self.blobs.get(file_id) if meta else None
        if meta is None or content is None:
            raise MediaUnavailable(f"file {file_id} is no longer available")
        return Media(content, meta.content_type)

    async def _read_artifact(self, artifact_id: str) -> Media:
        """An earlier job's output, with its copy upstream when the provider keeps one."""
        meta = await self.files.artifact(artifact_id)
        content = await self.blobs.get(artifact_id) if meta else None
        if meta is None or content is None:
            raise MediaUnavailable(f"artifact {artifact_id} is no longer available")
        return Media(content, meta.content_type, meta.upstream)

    async def _download(self, url: str, max_bytes: int | None = None) -> Media:
        limits = self.limits
        cap = max_bytes or self.max_bytes
        loop = asyncio.get_running_loop()
        started = loop.time()
        received = 0
        try:
            async with asyncio.timeout_at(limits.cutoff(started, 0)) as deadline:
                timeout = httpx.Timeout(limits.timeout_s, connect=min(5.0, limits.timeout_s))
                async with self._answered(url, timeout) as response:
                    if response.status_code != 200:
                        raise MediaUnavailable(f"fetching {url} answered {response.status_code}")
                    chunks: list[bytes] = []
                    async for chunk in response.aiter_bytes():
                        received += len(chunk)
                        if received > cap:
                            raise MediaUnavailable(f"{url} is larger than {cap} bytes")
                        chunks.append(chunk)
                        deadline.reschedule(limits.cutoff(started, received))
                    kind = response.headers.get("content-type", "application/octet-stream")
                    return Media(b"".join(chunks), kind.split(";")[0])
        except TimeoutError as exc:
            elapsed = loop.time() - started
            if limits.cutoff(started, received) >= started + limits.timeout_s:
                detail = f"fetching {url} did not finish within {limits.timeout_s:g} s"
            else:
                detail = (
                    f"fetching {url} was cut off: {received} bytes in {elapsed:.1f} s, below "
                    f"the minimum of {limits.min_rate_bps} bytes/s"
                )
            raise MediaFetchTimeout(detail) from exc
        except httpx.HTTPError as exc:
            raise MediaUnavailable(f"could not fetch {url}: {type(exc).__name__}") from exc

    @asynccontextmanager
    async def _answered(self, url: str, timeout: httpx.Timeout) -> AsyncIterator[httpx.Response]:
        """The streamed answer to ``GET url``, sent a second time when the connection was
        closed under the first before any answer (see the module docstring)."""
        request = self.client.build_request("GET", url, timeout=timeout)
        try:
            response = await self.client.send(request, stream=True)
        except CLOSED_BEFORE_ANSWER:
            response = await self.client.send(request, stream=True)
        try:
            yield response
        finally:
            await response.aclose()


class JobMedia:
    """One job's ``MediaSource``: prefetched URLs from memory, everything else as usual."""

    def __init__(self, media: StoredMedia, job_id: str, tenant_id: str = "") -> None:
        self.media = media
        self.job_id = job_id
        self.tenant_id = tenant_id

    async def read(self, ref: MediaInput) -> Media:
        if ref.url is not None:
            cached = self.media.fetched(self.job_id, ref.url)
            if cached is not None:
                return cached
        return await self.media.read(ref)

    def public_url(self, ref: MediaInput) -> str:
        return self.media.public_url(ref)

    async def publish(self, media: Media) -> str:
        return await self.media.publish(self.tenant_id, media)


def _url_key(job_id: str, url: str) -> str:
    return f"url {job_id} {url}"
