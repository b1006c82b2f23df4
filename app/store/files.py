"""Metadata of uploaded files and stored artifacts (the bytes live in a BlobStore).

Each entry is one JSON string written with ``SET … EX``: one command sent alone, or written by
the storage reservation of the same blobs (``reserve_storage.lua``), or by the terminal save of
a waited job (``save_job.lua``), once they fit the quota.
"""

from __future__ import annotations

from pydantic import BaseModel
from redis.asyncio import Redis

from app.domain.models import UpstreamFile
from app.store import keys
from app.store.storage import BlobRecord


class BlobMeta(BaseModel):
    id: str
    tenant: str
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None
    upstream: UpstreamFile | None = None
    """An artifact's copy at the provider that made it (reused as an input there)."""


class FileIndex:
    """Who owns which file or artifact, and what it is. Files expire; artifacts follow jobs."""

    def __init__(self, redis: Redis, *, file_ttl_s: int, artifact_ttl_s: int) -> None:
        self.redis = redis
        self.file_ttl_s = file_ttl_s
        self.artifact_ttl_s = artifact_ttl_s

    async def add_file(self, meta: BlobMeta) -> None:
        await self.redis.set(keys.file(meta.id), meta.model_dump_json(), ex=self.file_ttl_s)

    async def add_artifact(self, meta: BlobMeta) -> None:
        await self.redis.set(keys.artifact(meta.id), meta.model_dump_json(), ex=self.artifact_ttl_s)

    def record(self, meta: BlobMeta) -> BlobRecord:
        """:meth:`add_file` or :meth:`add_artifact` (by the id), to be written by the storage
        reservation of the blob (``StorageLedger.reserve``)."""
        artifact = meta.id.startswith("art_")
        key = keys.artifact(meta.id) if artifact else keys.file(meta.id)
        ttl = self.artifact_ttl_s if artifact else self.file_ttl_s
        return BlobRecord(key, meta.model_dump_json(), ttl)

    async def file(self, file_id: str) -> BlobMeta | None:
        return _parse(await self.redis.get(keys.file(file_id)))

    async def artifact(self, artifact_id: str) -> BlobMeta | None:
        return _parse(await self.redis.get(keys.artifact(artifact_id)))


def _parse(raw: str | bytes | None) -> BlobMeta | None:
    return BlobMeta.model_validate_json(raw) if raw else None
