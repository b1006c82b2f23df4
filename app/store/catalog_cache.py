"""Upstreams' catalog answers (Perfect's styles, Everypixel's voices), kept a while in Redis
so every process reuses them instead of asking the upstream again."""

from __future__ import annotations

from redis.asyncio import Redis

from app.store import keys

CATALOG_TTL_S = 3600


class CatalogCache:
    def __init__(self, redis: Redis, ttl_s: int = CATALOG_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def get(self, kind: str, provider: str, query: str) -> str | None:
        """The JSON kept for this question, or None when there is none (or it expired)."""
        found = await self.redis.get(keys.catalog(kind, provider, query))
        return found.decode() if isinstance(found, bytes) else found

    async def put(self, kind: str, provider: str, query: str, answer: str) -> None:
        await self.redis.set(keys.catalog(kind, provider, query), answer, ex=self.ttl_s)
