"""Which workers are alive: each sends a heartbeat; readiness counts the recent ones."""

from __future__ import annotations

from redis.asyncio import Redis

from app.store import keys
from app.store.jobs import now_ms


class WorkerPresence:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def beat(self, worker_id: str) -> None:
        await self.redis.zadd(keys.WORKERS, {worker_id: now_ms()})

    async def leave(self, worker_id: str) -> None:
        await self.redis.zrem(keys.WORKERS, worker_id)

    async def alive(self, within_ms: int) -> int:
        """Workers whose last heartbeat is at most ``within_ms`` old; raises when the store
        cannot be reached."""
        await self.redis.ping()
        count: int = await self.redis.zcount(keys.WORKERS, now_ms() - within_ms, "+inf")
        return count
