"""Tenants and their API keys. Keys are stored as SHA-256 hashes, never in plain text.

Resolved keys are cached per process for ``cache_s`` seconds, but only while the process is
subscribed to ``keys.CACHE_INVALIDATIONS`` (``cache_enabled``): every revocation and every
tenant change is published there and clears every process's cache at once, so a revoked key
or a suspended tenant is refused everywhere immediately.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

from pydantic import BaseModel
from redis.asyncio import Redis

from app.domain.models import WebhookEvent
from app.store import keys
from app.store.scripts import Scripts

KEY_PREFIX = "mg_live_"


def hash_key(api_key: str, pepper: bytes = b"") -> str:
    """The digest an API key is stored under: HMAC-SHA-256 with the pepper
    (``MEDIAGATE_KEY_PEPPER``), plain SHA-256 without one (development)."""
    if pepper:
        return hmac.new(pepper, api_key.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(api_key.encode()).hexdigest()


class Tenant(BaseModel):
    id: str
    name: str
    status: str = "active"
    rate_limit_rpm: int | None = None
    """Requests per minute; ``None``: the configured default."""
    max_concurrent_jobs: int | None = None
    """Unfinished jobs at once; ``None``: the configured default."""
    charge_accepted_work: bool | None = None
    """Charge a job canceled or past its deadline once the upstream accepted its task;
    ``None``: the configured default (``charge_accepted_work``)."""
    webhook_events: list[WebhookEvent] | None = None
    """The events its jobs' callback URLs get unless a job chooses; ``None``: a job's end."""
    result_cache_ttl_s: int | None = None
    """How long a result serves the same request again (0: never); ``None``: the default."""
    cache_hit_percent: int | None = None
    """Share of the price a cached result costs (0: free); ``None``: the default."""
    storage_quota_bytes: int | None = None
    """Bytes of files and outputs kept at once; ``None``: the configured default."""
    created_at: int | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"


class TenantPolicy(BaseModel):
    """Per-tenant choices beyond the limits; ``None`` leaves one unset (or as it is)."""

    webhook_events: list[WebhookEvent] | None = None
    result_cache_ttl_s: int | None = None
    cache_hit_percent: int | None = None
    storage_quota_bytes: int | None = None

    def fields(self) -> dict[str, str | int]:
        """The fields of the tenant's hash these set."""
        fields: dict[str, str | int] = {}
        if self.webhook_events is not None:
            fields["webhook_events"] = ",".join(e.value for e in self.webhook_events)
        if self.result_cache_ttl_s is not None:
            fields["result_cache_ttl_s"] = self.result_cache_ttl_s
        if self.cache_hit_percent is not None:
            fields["cache_hit_percent"] = self.cache_hit_percent
        if self.storage_quota_bytes is not None:
            fields["storage_quota_bytes"] = self.storage_quota_bytes
        return fields


def _events(value: str | bytes | None) -> list[WebhookEvent] | None:
    if not value:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    known = {e.value for e in WebhookEvent}
    return [WebhookEvent(e) for e in text.split(",") if e in known]


class Caller(BaseModel):
    """Who made a request: the tenant and the key it used."""

    tenant: Tenant
    key_id: str


def _int(value: str | bytes | None) -> int | None:
    return int(value) if value else None


def _flag(value: str | bytes | None) -> bool | None:
    return None if not value else str(value) == "1"


class TenantStore:
    def __init__(
        self, redis: Redis, scripts: Scripts, *, cache_s: float = 30.0, pepper: bytes = b""
    ) -> None:
        self.redis = redis
        self.pepper = pepper
        self.scripts = scripts
        self.cache_s = cache_s
        self.cache_enabled = False
        self._cache: dict[str, tuple[float, Caller]] = {}

    # -- authentication ------------------------------------------------------------------

    async def authenticate(self, api_key: str) -> Caller | None:
        digest = hash_key(api_key, self.pepper)
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
        tenant_id, name, status, key_id, rpm, concurrency, charge, events, ttl, hit = (
            str(v) for v in row
        )
        caller = Caller(
            tenant=Tenant(
                id=tenant_id,
                name=name,
                status=status,
                rate_limit_rpm=_int(rpm),
                max_concurrent_jobs=_int(concurrency),
                charge_accepted_work=_flag(charge),
                webhook_events=_events(events),
                result_cache_ttl_s=_int(ttl),
                cache_hit_percent=_int(hit),
            ),
            key_id=key_id,
        )
        if self.cache_enabled:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_s, caller)
        return caller

    def forget_all(self) -> None:
        self._cache.clear()

    async def announce_change(self) -> None:
        """Tell every process to drop its cached keys (after a revocation or a tenant change)."""
        self.forget_all()
        await self.redis.publish(keys.CACHE_INVALIDATIONS, "auth")

    # -- tenants -------------------------------------------------------------------------

    async def create(
        self,
        name: str,
        *,
        tenant_id: str | None = None,
        rate_limit_rpm: int | None = None,
        max_concurrent_jobs: int | None = None,
        charge_accepted_work: bool | None = None,
        policy: TenantPolicy | None = None,
    ) -> Tenant:
        policy = policy or TenantPolicy()
        tenant = Tenant(
            id=tenant_id or "ten_" + os.urandom(8).hex(),
            name=name,
            rate_limit_rpm=rate_limit_rpm,
            max_concurrent_jobs=max_concurrent_jobs,
            charge_accepted_work=charge_accepted_work,
            webhook_events=policy.webhook_events,
            result_cache_ttl_s=policy.result_cache_ttl_s,
            cache_hit_percent=policy.cache_hit_percent,
            storage_quota_bytes=policy.storage_quota_bytes,
            created_at=int(time.time()),
        )
        fields: dict[str, str | int] = {
            "name": tenant.name,
            "status": tenant.status,
            "created_at": tenant.created_at or 0,
        }
        if rate_limit_rpm is not None:
            fields["rate_limit_rpm"] = rate_limit_rpm
        if max_concurrent_jobs is not None:
            fields["max_concurrent_jobs"] = max_concurrent_jobs
        if charge_accepted_work is not None:
            fields["charge_accepted_work"] = int(charge_accepted_work)
        fields.update(policy.fields())
        created = await self.redis.hsetnx(keys.tenant(tenant.id), "name", name)
        if not created:
            existing = await self.get(tenant.id)
            assert existing is not None
            return existing
        await self.redis.hset(keys.tenant(tenant.id), mapping=fields)  # type: ignore[arg-type]
        await self.redis.zadd(keys.TENANTS, {tenant.id: tenant.created_at or 0})
        return tenant

    async def get(self, tenant_id: str) -> Tenant | None:
        row = await self.redis.hgetall(keys.tenant(tenant_id))
        if not row:
            return None
        return Tenant(
            id=tenant_id,
            name=str(row["name"]),
            status=str(row.get("status", "active")),
            rate_limit_rpm=_int(row.get("rate_limit_rpm")),
            max_concurrent_jobs=_int(row.get("max_concurrent_jobs")),
            charge_accepted_work=_flag(row.get("charge_accepted_work")),
            webhook_events=_events(row.get("webhook_events")),
            result_cache_ttl_s=_int(row.get("result_cache_ttl_s")),
            cache_hit_percent=_int(row.get("cache_hit_percent")),
            storage_quota_bytes=_int(row.get("storage_quota_bytes")),
            created_at=_int(row.get("created_at")),
        )

    async def list(self, *, cursor: str | None, limit: int) -> tuple[list[Tenant], str | None]:
        start = 0 if cursor is None else int(cursor)
        ids = await self.redis.zrange(keys.TENANTS, start, start + limit - 1)
        tenants = [t for t in [await self.get(str(i)) for i in ids] if t is not None]
        more = len(ids) == limit
        return tenants, str(start + limit) if more else None

    async def update(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        charge_accepted_work: bool | None = None,
        policy: TenantPolicy | None = None,
    ) -> Tenant | None:
        """Change what is given; ``None`` leaves a field as it is."""
        if not await self.redis.exists(keys.tenant(tenant_id)):
            return None
        fields: dict[str, str | int] = {}
        if status is not None:
            fields["status"] = status
        if charge_accepted_work is not None:
            fields["charge_accepted_work"] = int(charge_accepted_work)
        if policy is not None:
            fields.update(policy.fields())
        if fields:
            await self.redis.hset(keys.tenant(tenant_id), mapping=fields)  # type: ignore[arg-type]
            await self.announce_change()
        return await self.get(tenant_id)

    # -- keys ----------------------------------------------------------------------------

    async def add_key(self, tenant_id: str, api_key: str | None = None) -> tuple[str, str]:
        """Register a key for a tenant; returns ``(key_id, plaintext)`` — shown only once."""
        plaintext = api_key or KEY_PREFIX + os.urandom(24).hex()
        key_id = "key_" + os.urandom(8).hex()
        digest = hash_key(plaintext, self.pepper)
        await self.redis.hset(
            keys.api_key(digest),
            mapping={"tenant": tenant_id, "key_id": key_id, "created_at": int(time.time())},
        )
        await self.redis.set(keys.key_id(key_id), digest)
        return key_id, plaintext

    async def revoke_key(self, key_id: str) -> bool:
        digest = await self.redis.get(keys.key_id(key_id))
        if digest is None:
            return False
        await self.redis.hset(keys.api_key(str(digest)), "revoked", "1")
        await self.announce_change()
        return True

    async def ensure_key(self, tenant_id: str, api_key: str) -> None:
        """Register a well-known key (the sandbox tenant's) if it is not there yet."""
        if not await self.redis.exists(keys.api_key(hash_key(api_key, self.pepper))):
            await self.add_key(tenant_id, api_key)

    async def remove_key(self, api_key: str) -> None:
        await self.redis.delete(keys.api_key(hash_key(api_key, self.pepper)))
        await self.announce_change()

    async def first_seed(self, tenant_id: str) -> bool:
        """True the first time this is asked for the tenant, ever (a seed applied once, such
        as the sandbox tenant's credits); False after, in every process."""
        return bool(await self.redis.hsetnx(keys.SEEDED, tenant_id, "1"))
