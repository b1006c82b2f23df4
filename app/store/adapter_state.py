"""The Redis-backed ``AdapterState``: tokens and request ids adapters share across processes."""

from __future__ import annotations

from redis.asyncio import Redis

from app.store import keys


class RedisAdapterState:
    """One provider's corner of Redis (keys under ``mg:adapter:<provider>:``)."""

    def __init__(self, redis: Redis, provider: str) -> None:
        self.redis = redis
        self.provider = provider

    async def get(self, key: str) -> str | None:
        value = await self.redis.get(keys.adapter_state(self.provider, key))
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, value: str, ttl_s: float, *, only_new: bool = False) -> bool:
        done = await self.redis.set(
            keys.adapter_state(self.provider, key), value, px=int(ttl_s * 1000), nx=only_new
        )
        return bool(done)

    async def incr(self, key: str) -> int:
        return int(await self.redis.incr(keys.adapter_state(self.provider, key)))
