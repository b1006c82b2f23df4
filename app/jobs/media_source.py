"""Resolving a job's media references for adapters: uploaded files and client URLs."""

from __future__ import annotations

from collections import OrderedDict

import httpx

from app.blobs import BlobStore
from app.domain.errors import ErrorCode, GatewayError
from app.domain.media import MediaInput
from app.providers.base import Media
from app.signing import UrlSigner
from app.store.files import FileIndex


class MediaUnavailable(GatewayError):
    """An input cannot be read any more (file expired, URL gone): the job fails, not retried."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, ErrorCode.invalid_media, 422)


class StoredMedia:
    """The gateway's ``MediaSource``: files from the blob store, URLs fetched with a size cap.

    Files this process stored recently are kept in memory (bounded by ``cache_bytes``), so a
    job run right after its upload (``Prefer: wait``) does not read back what it just wrote.
    """

    def __init__(
        self,
        files: FileIndex,
        blobs: BlobStore,
        signer: UrlSigner,
        client: httpx.AsyncClient,
        max_bytes: int,
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.files = files
        self.blobs = blobs
        self.signer = signer
        self.client = client
        self.max_bytes = max_bytes
        self.cache_bytes = cache_bytes
        self._recent: OrderedDict[str, Media] = OrderedDict()
        self._recent_size = 0

    def remember(self, file_id: str, media: Media) -> None:
        self._recent[file_id] = media
        self._recent_size += len(media.content)
        while self._recent_size > self.cache_bytes and self._recent:
            _, evicted = self._recent.popitem(last=False)
            self._recent_size -= len(evicted.content)

    async def read(self, ref: MediaInput) -> Media:
        if ref.file_id is not None:
            return await self._read_file(ref.file_id)
        assert ref.url is not None
        return await self._download(ref.url)

    def public_url(self, ref: MediaInput) -> str:
        if ref.url is not None:
            return ref.url
        assert ref.file_id is not None
        return self.signer.sign(f"/v1/files/{ref.file_id}/content")

    async def _read_file(self, file_id: str) -> Media:
        recent = self._recent.get(file_id)
        if recent is not None:
            return recent
        meta = await self.files.file(file_id)
        content = await self.blobs.get(file_id) if meta else None
        if meta is None or content is None:
            raise MediaUnavailable(f"file {file_id} is no longer available")
        return Media(content, meta.content_type)

    async def _download(self, url: str) -> Media:
        try:
            async with self.client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise MediaUnavailable(f"fetching {url} answered {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise MediaUnavailable(f"{url} is larger than {self.max_bytes} bytes")
                    chunks.append(chunk)
                kind = response.headers.get("content-type", "application/octet-stream")
                return Media(b"".join(chunks), kind.split(";")[0])
        except httpx.HTTPError as exc:
            raise MediaUnavailable(f"could not fetch {url}: {type(exc).__name__}") from exc
