"""Result-cache entries: ``(tenant, key)`` → the job whose result answers it, and when."""

from __future__ import annotations

from redis.asyncio import Redis

from app.store import keys
from app.store.jobs import now_ms


class ResultCacheStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def lookup(self, tenant_id: str, key: str) -> tuple[str, int] | None:
        """The job id and the epoch ms it was remembered at, if an entry lives."""
        raw = await self.redis.get(keys.result_cache(tenant_id, key))
        if not raw:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        job_id, _, at = text.partition(" ")
        return job_id, int(at or 0)

    async def remember(self, tenant_id: str, key: str, job_id: str, ttl_s: int) -> None:
        """Keep the entry ``ttl_s`` (a newer result for the same key replaces it)."""
        await self.redis.set(keys.result_cache(tenant_id, key), f"{job_id} {now_ms()}", ex=ttl_s)
