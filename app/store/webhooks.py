"""Webhook deliveries in Redis: the due-queue, each job's delivery log, tenants' secrets."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from pydantic import BaseModel
from redis.asyncio import Redis

from app.store import keys
from app.store.scripts import Scripts


class DeliveryAttempt(BaseModel):
    """One POST of a job's webhook to its ``callback_url``."""

    attempt: int
    event: str | None = None
    """The event this attempt delivered (``job.started``…); ``None`` in older logs."""
    at: datetime
    status_code: int | None = None
    """The receiver's answer; ``None`` when it could not be reached."""
    error: str | None = None
    duration_ms: int
    next_attempt_at: datetime | None = None
    """When the next try is due; ``None`` once delivered or given up."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class WebhookStore:
    def __init__(self, redis: Redis, scripts: Scripts, *, retention_s: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.retention_s = retention_s

    async def claim(self, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        due = await self.scripts.claim_webhooks(
            keys=[keys.WEBHOOKS_DUE], args=[now_ms, now_ms + lease_ms, limit]
        )
        return [d.decode() if isinstance(d, bytes) else str(d) for d in due]

    async def record(self, job_id: str, attempt: DeliveryAttempt, next_due_ms: int | None) -> None:
        """Log an attempt and schedule the next one (or take the job off the queue)."""
        log = keys.webhook_deliveries(job_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(log, attempt.model_dump_json())
            pipe.expire(log, self.retention_s)
            if next_due_ms is None:
                pipe.zrem(keys.WEBHOOKS_DUE, job_id)
            else:
                pipe.zadd(keys.WEBHOOKS_DUE, {job_id: next_due_ms})
            await pipe.execute()

    async def postpone(self, job_id: str, due_ms: int) -> None:
        """Make a claimed delivery due at ``due_ms`` without an attempt (still queued only)."""
        await self.redis.zadd(keys.WEBHOOKS_DUE, {job_id: due_ms}, xx=True)

    async def drop(self, job_id: str) -> None:
        await self.redis.zrem(keys.WEBHOOKS_DUE, job_id)

    async def attempts_made(self, job_id: str) -> int:
        return int(await self.redis.llen(keys.webhook_deliveries(job_id)))

    async def attempts(self, job_id: str) -> list[DeliveryAttempt]:
        """Every attempt for the job's events (its end, and started or progress if it was
        subscribed to them), oldest first."""
        logs = [job_id, f"{job_id}#started", f"{job_id}#progress"]
        async with self.redis.pipeline(transaction=False) as pipe:
            for log in logs:
                pipe.lrange(keys.webhook_deliveries(log), 0, -1)
            raw = [entry for entries in await pipe.execute() for entry in entries]
        attempts = [DeliveryAttempt.model_validate_json(r) for r in raw]
        return sorted(attempts, key=lambda a: a.at)

    async def secret(self, tenant_id: str) -> str:
        """The tenant's signing secret, created on first use."""
        key = keys.webhook_secret(tenant_id)
        await self.redis.set(key, new_secret(), nx=True)
        value = await self.redis.get(key)
        return value.decode() if isinstance(value, bytes) else str(value)

    async def rotate_secret(self, tenant_id: str) -> str:
        secret = new_secret()
        await self.redis.set(keys.webhook_secret(tenant_id), secret)
        return secret
