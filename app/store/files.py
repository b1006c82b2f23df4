"""Metadata of uploaded files and stored artifacts (the bytes live in a BlobStore).

Each entry is one JSON string written with ``SET … EX``: one command, sent alone or queued on
a ``RoundTrip`` with the storage reservation of the same blobs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel
from redis.asyncio import Redis

from app.domain.models import UpstreamFile
from app.store import keys
from app.store.round_trip import RoundTrip


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

    def add_in(self, trip: RoundTrip, meta: BlobMeta) -> Callable[[], None]:
        """:meth:`add_file` or :meth:`add_artifact` (by the id) queued on ``trip``; the
        returned function raises the write's error, if any, once the trip has run."""
        artifact = meta.id.startswith("art_")
        key = keys.artifact(meta.id) if artifact else keys.file(meta.id)
        ttl = self.artifact_ttl_s if artifact else self.file_ttl_s
        index = trip.command("SET", key, meta.model_dump_json(), "EX", ttl)

        def written() -> None:
            trip.result(index)

        return written

    async def forget(self, metas: Sequence[BlobMeta]) -> None:
        """Drop the records of blobs that were not stored after all."""
        names = [keys.artifact(m.id) if m.id.startswith("art_") else keys.file(m.id) for m in metas]
        if names:
            await self.redis.delete(*names)

    async def file(self, file_id: str) -> BlobMeta | None:
        return _parse(await self.redis.get(keys.file(file_id)))

    async def artifact(self, artifact_id: str) -> BlobMeta | None:
        return _parse(await self.redis.get(keys.artifact(artifact_id)))


def _parse(raw: str | bytes | None) -> BlobMeta | None:
    return BlobMeta.model_validate_json(raw) if raw else None
