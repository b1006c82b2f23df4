"""Tenants and their API keys. Keys are stored as SHA-256 hashes, never in plain text."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from app.store import keys
from app.store.scripts import Scripts

KEY_PREFIX = "mg_live_"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    status: str = "active"
    key_id: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"


class TenantStore:
    """Tenants and keys. Resolved keys are cached in the process for ``cache_s`` seconds.

    The cache is only trusted while ``cache_enabled`` (the process is subscribed to
    ``keys.AUTH_CHANGES``): every revocation or suspension is published there and clears
    every process's cache at once, so a revoked key stops working everywhere immediately.
    """

    def __init__(self, redis: Redis, scripts: Scripts, *, cache_s: float = 30.0) -> None:
        self.redis = redis
        self.scripts = scripts
        self.cache_s = cache_s
        self.cache_enabled = False
        self._cache: dict[str, tuple[float, Tenant]] = {}

    async def authenticate(self, api_key: str) -> Tenant | None:
        digest = hash_key(api_key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now and self.cache_enabled:
            return cached[1]
        row = await self.scripts.authenticate(
            keys=[keys.api_key(digest)],
            args=[int(time.time()), keys.tenant("")],
        )
        if not row:
            return None
        tenant_id, name, status, key_id = row
        tenant = Tenant(tenant_id, name, status, key_id)
        if self.cache_enabled:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_s, tenant)
        return tenant

    def forget_all(self) -> None:
        self._cache.clear()

    async def announce_change(self) -> None:
        """Tell every process to drop its cached keys (after a revocation or suspension)."""
        self.forget_all()
        await self.redis.publish(keys.AUTH_CHANGES, "1")

    async def ensure_tenant(self, tenant_id: str, name: str) -> Tenant:
        await self.redis.hsetnx(keys.tenant(tenant_id), "name", name)
        await self.redis.hsetnx(keys.tenant(tenant_id), "status", "active")
        return Tenant(tenant_id, name)

    async def add_key(self, tenant_id: str, api_key: str | None = None) -> tuple[str, str]:
        """Register a key for a tenant; returns ``(key_id, plaintext)`` — shown only once."""
        plaintext = api_key or KEY_PREFIX + os.urandom(24).hex()
        key_id = "key_" + os.urandom(8).hex()
        await self.redis.hset(
            keys.api_key(hash_key(plaintext)),
            mapping={"tenant": tenant_id, "key_id": key_id, "created_at": int(time.time())},
        )
        return key_id, plaintext

    async def ensure_key(self, tenant_id: str, api_key: str) -> None:
        """Register a well-known key (the sandbox tenant's) if it is not there yet."""
        if not await self.redis.exists(keys.api_key(hash_key(api_key))):
            await self.add_key(tenant_id, api_key)

    async def remove_key(self, api_key: str) -> None:
        await self.redis.delete(keys.api_key(hash_key(api_key)))
        await self.announce_change()
