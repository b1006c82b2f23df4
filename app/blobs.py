"""Where uploaded files and job outputs are kept: a small interface, a local-disk backend.

Metadata (owner, content type, size) lives in Redis (``store/files.py``); this holds bytes
only, addressed by id. An S3-compatible backend implements the same three methods.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    async def put(self, blob_id: str, data: bytes) -> None: ...

    async def get(self, blob_id: str) -> bytes | None: ...

    def local_path(self, blob_id: str) -> Path | None:
        """A path the HTTP layer can stream from, when the backend is a local disk."""
        ...


class LocalBlobStore:
    """Blobs as files under ``root``, fanned out by the id's last two characters."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def local_path(self, blob_id: str) -> Path:
        if not blob_id.replace("_", "").isalnum():
            raise ValueError(f"bad blob id {blob_id!r}")
        return self.root / blob_id[-2:] / blob_id

    async def put(self, blob_id: str, data: bytes) -> None:
        path = self.local_path(blob_id)
        if len(data) < 256 * 1024:  # small writes are cheaper inline than on a thread
            _write_atomically(path, data)
        else:
            await asyncio.to_thread(_write_atomically, path, data)

    async def get(self, blob_id: str) -> bytes | None:
        path = self.local_path(blob_id)
        try:
            if path.stat().st_size < 256 * 1024:
                return path.read_bytes()
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
