"""Metadata of uploaded files and stored artifacts (the bytes live in a BlobStore)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from app.store import keys


@dataclass(frozen=True)
class BlobMeta:
    id: str
    tenant: str
    content_type: str
    bytes: int
    width: int | None = None
    height: int | None = None

    def fields(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {
            "tenant": self.tenant,
            "content_type": self.content_type,
            "bytes": self.bytes,
        }
        if self.width is not None and self.height is not None:
            out.update(width=self.width, height=self.height)
        return out

    @classmethod
    def parse(cls, blob_id: str, row: dict[str, str]) -> BlobMeta | None:
        if not row:
            return None
        return cls(
            id=blob_id,
            tenant=row["tenant"],
            content_type=row["content_type"],
            bytes=int(row["bytes"]),
            width=int(row["width"]) if "width" in row else None,
            height=int(row["height"]) if "height" in row else None,
        )


class FileIndex:
    """Who owns which file or artifact, and what it is. Files expire; artifacts follow jobs."""

    def __init__(self, redis: Redis, *, file_ttl_s: int, artifact_ttl_s: int) -> None:
        self.redis = redis
        self.file_ttl_s = file_ttl_s
        self.artifact_ttl_s = artifact_ttl_s

    async def add_file(self, meta: BlobMeta) -> None:
        await self._put(keys.file(meta.id), meta, self.file_ttl_s)

    async def add_artifact(self, meta: BlobMeta) -> None:
        await self._put(keys.artifact(meta.id), meta, self.artifact_ttl_s)

    async def _put(self, key: str, meta: BlobMeta, ttl_s: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=meta.fields())
            pipe.expire(key, ttl_s)
            await pipe.execute()

    async def file(self, file_id: str) -> BlobMeta | None:
        return BlobMeta.parse(file_id, await self.redis.hgetall(keys.file(file_id)))

    async def artifact(self, artifact_id: str) -> BlobMeta | None:
        return BlobMeta.parse(artifact_id, await self.redis.hgetall(keys.artifact(artifact_id)))
