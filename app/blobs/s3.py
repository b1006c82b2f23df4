"""Blobs as objects in an S3-compatible store (AWS S3, SeaweedFS, MinIO, Ceph RGW, R2…).

The client is obstore (Rust's ``object_store`` crate, maintained under Apache Arrow): async
without a thread pool, streaming both ways (multipart uploads past ``PART_BYTES``, ranged GETs
read chunk by chunk), presigned URLs, and the standard ``AWS_*`` environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``…)
read by the client itself. ``MEDIAGATE_S3_ENDPOINT_URL`` points it at a store other than AWS
(path-style requests; plain HTTP allowed when the URL says ``http://``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import obstore
from obstore.store import S3Store

from app.blobs.base import BlobReader, BlobStoreError, check_blob_id
from app.domain.media_types import sniff

if TYPE_CHECKING:
    from obstore import Attributes, GetOptions

PART_BYTES = 8 * 1024 * 1024
"""Uploads larger than this go up as a multipart upload, in parts of this size."""
READ_CHUNK = 256 * 1024
"""Downloads are handed on in chunks of at least this size (the last one may be smaller)."""
MAX_PRESIGN_S = 7 * 86400
"""The longest a SigV4 presigned URL may live."""


class S3BlobStore:
    """Objects ``<prefix>/<blob id>`` in one bucket."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        presign_endpoint_url: str | None = None,
        credentials: tuple[str, str] | None = None,
        region: str | None = None,
    ) -> None:
        """``credentials`` (key id, secret) and ``region`` override the ``AWS_*`` variables."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"expected s3://bucket[/prefix], got {url!r}")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        config: dict[str, Any] = {}
        if credentials is not None:
            config["access_key_id"], config["secret_access_key"] = credentials
        if region is not None:
            config["region"] = region
        self.client = _store(self.bucket, self.prefix, endpoint_url, config)
        self._signer = (
            _store(self.bucket, self.prefix, presign_endpoint_url, config)
            if presign_endpoint_url
            else self.client
        )

    def local_path(self, blob_id: str) -> None:
        return None

    async def put(
        self,
        blob_id: str,
        data: bytes | AsyncIterable[bytes],
        content_type: str | None = None,
    ) -> None:
        if content_type is None and isinstance(data, bytes):
            content_type = sniff(data)
        attributes: Attributes = {"Content-Type": content_type or "application/octet-stream"}
        try:
            await obstore.put_async(
                self.client,
                check_blob_id(blob_id),
                memoryview(data) if isinstance(data, bytes) else data,
                attributes=attributes,
                chunk_size=PART_BYTES,
            )
        except obstore.exceptions.BaseError as exc:
            raise BlobStoreError(f"put {blob_id}: {exc}") from exc

    async def get(self, blob_id: str) -> bytes | None:
        try:
            result = await obstore.get_async(self.client, check_blob_id(blob_id))
            return (await result.bytes_async()).to_bytes()
        except FileNotFoundError:
            return None
        except obstore.exceptions.BaseError as exc:
            raise BlobStoreError(f"get {blob_id}: {exc}") from exc

    async def open(
        self, blob_id: str, byte_range: tuple[int, int] | None = None
    ) -> BlobReader | None:
        options: GetOptions = {}
        if byte_range is not None:
            options["range"] = byte_range
        try:
            result = await obstore.get_async(self.client, check_blob_id(blob_id), options=options)
        except FileNotFoundError:
            return None
        except obstore.exceptions.BaseError as exc:
            raise BlobStoreError(f"get {blob_id}: {exc}") from exc
        start, end = result.range
        meta = result.meta
        return BlobReader(
            _chunks(result.stream(min_chunk_size=READ_CHUNK)),
            start,
            end,
            meta["size"],
            meta["e_tag"],
        )

    async def delete(self, blob_id: str) -> None:
        try:
            await obstore.delete_async(self.client, check_blob_id(blob_id))
        except FileNotFoundError:
            return
        except obstore.exceptions.BaseError as exc:
            raise BlobStoreError(f"delete {blob_id}: {exc}") from exc

    async def presign(self, blob_id: str, ttl_s: int) -> str:
        expires = timedelta(seconds=max(1, min(ttl_s, MAX_PRESIGN_S)))
        try:
            return await obstore.sign_async(self._signer, "GET", check_blob_id(blob_id), expires)
        except obstore.exceptions.BaseError as exc:
            raise BlobStoreError(f"presign {blob_id}: {exc}") from exc


def _store(bucket: str, prefix: str, endpoint_url: str | None, given: dict[str, Any]) -> S3Store:
    """A client for the bucket; credentials and region from the ``AWS_*`` environment
    unless ``given``."""
    config = dict(given)
    client: dict[str, Any] = {
        "connect_timeout": timedelta(seconds=5),
        # a whole download streamed to a slow client runs under this one timeout
        "timeout": timedelta(minutes=10),
    }
    if endpoint_url:
        config["endpoint"] = endpoint_url.rstrip("/")
        config["virtual_hosted_style_request"] = False
        client["allow_http"] = endpoint_url.startswith("http://")
    return S3Store(
        bucket,
        prefix=prefix or None,
        config=config,  # type: ignore[arg-type]
        client_options=client,  # type: ignore[arg-type]
        retry_config={
            "max_retries": 3,
            "retry_timeout": timedelta(seconds=15),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
                "base": 2,
            },
        },
    )


async def _chunks(stream: AsyncIterator[Any]) -> AsyncIterator[bytes | memoryview]:
    """The client's buffers as memoryviews: handed to the socket without a copy."""
    async for buffer in stream:
        yield memoryview(buffer)
