"""Where uploaded files and job outputs are kept: one interface, two backends.

Metadata (owner, content type, size) lives in Redis (``store/files.py``); a blob store holds
bytes only, addressed by id. ``MEDIAGATE_BLOB_URL`` picks the backend: unset or ``file://…``
is a directory on local disk (``local.py``, the single-machine default), ``s3://bucket/prefix``
an S3-compatible object store (``s3.py``) that any number of gateways and workers share.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.blobs.base import BlobReader, BlobStore, BlobStoreError, check_blob_id
from app.blobs.local import LocalBlobStore

__all__ = [
    "BlobReader",
    "BlobStore",
    "BlobStoreError",
    "LocalBlobStore",
    "check_blob_id",
    "open_blob_store",
]


def open_blob_store(
    url: str | None,
    data_dir: Path,
    *,
    s3_endpoint_url: str | None = None,
    s3_presign_endpoint_url: str | None = None,
) -> BlobStore:
    """The backend ``url`` (``MEDIAGATE_BLOB_URL``) names; local disk under ``data_dir``
    when unset."""
    if not url:
        return LocalBlobStore(data_dir / "blobs")
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalBlobStore(Path(unquote(parts.netloc + parts.path)))
    if parts.scheme == "s3":
        from app.blobs.s3 import S3BlobStore

        return S3BlobStore(
            url, endpoint_url=s3_endpoint_url, presign_endpoint_url=s3_presign_endpoint_url
        )
    raise ValueError(f"MEDIAGATE_BLOB_URL: unsupported scheme {parts.scheme!r} (file, s3)")
