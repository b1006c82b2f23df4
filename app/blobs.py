"""Where uploaded files and job outputs are kept: a small interface, a local-disk backend.

Metadata (owner, content type, size) lives in Redis (``store/files.py``); this holds bytes
only, addressed by id. An S3-compatible backend implements the same methods.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    async def put(self, blob_id: str, data: bytes) -> None: ...

    async def get(self, blob_id: str) -> bytes | None: ...

    async def delete(self, key: str) -> None:
        """Remove a blob; removing one that is not there is no error."""
        ...

    def local_path(self, blob_id: str) -> Path | None:
        """A path the HTTP layer can stream from, when the backend is a local disk."""
        ...


class LocalBlobStore:
    """Blobs as files under ``root``, fanned out by the id's last two characters.

    File system calls run on worker threads: creating a file costs more than the event loop
    should spend on it, and the GIL is released while the kernel works.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._dirs: set[str] = set()

    def local_path(self, blob_id: str) -> Path:
        if not blob_id.replace("_", "").isalnum():
            raise ValueError(f"bad blob id {blob_id!r}")
        return self.root / blob_id[-2:] / blob_id

    async def put(self, blob_id: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self.local_path(blob_id), data)

    async def get(self, blob_id: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self.local_path(blob_id).read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.local_path(key).unlink, missing_ok=True)

    def _write(self, path: Path, data: bytes) -> None:
        """Write to a temporary name, then rename: readers never see half a file."""
        directory = str(path.parent)
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
