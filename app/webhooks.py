"""Outbound webhooks: a finished job is POSTed to its ``callback_url``, signed as Standard
Webhooks specifies, until the receiver takes it.

The terminal save queues the delivery in the same Lua script that finishes the job, so none
is lost; a sender claims it under a lease (a sender that dies leaves it due again). Headers:
``webhook-id`` (stable across retries of one event, so receivers de-duplicate),
``webhook-timestamp`` (unix seconds) and ``webhook-signature``: ``v1,`` and the base64
HMAC-SHA256, keyed by the base64-decoded part of the tenant's ``whsec_…`` secret, of
``"{id}.{timestamp}.{body}"``. The payload's ``data`` is the job exactly as
``GET /v1/jobs/{id}`` shows it (the same renderer), signed artifact URLs included. A 2xx
answer delivers; 410 Gone stops at once; anything else (or no answer within the timeout) is
retried on the schedule — immediately, 5 s, 5 min,
30 min, 2 h, 5 h, 10 h, 10 h by default — each wait with ±10 % jitter. Every attempt is kept
and served at ``GET /v1/jobs/{id}/deliveries``. The URL was checked against SSRF when the job
was created and is checked again on connect by the guarded client.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import httpx
from redis.exceptions import RedisError

from app.domain.models import Job, JobRecord
from app.store.jobs import JobStore, now_ms
from app.store.webhooks import DeliveryAttempt, WebhookStore

log = logging.getLogger(__name__)

DEFAULT_SCHEDULE_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
LEASE_S = 30.0
TIMEOUT_S = 10.0
IDLE_SLEEP_S = 0.1


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payload(job: Job) -> bytes:
    """The event body: ``job`` is the job as a client reads it (``JobRenderer``)."""
    return json.dumps(
        {
            "type": f"job.{job.status.value}",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": job.model_dump(mode="json"),
        },
        separators=(",", ":"),
    ).encode()


class WebhookSender:
    def __init__(
        self,
        jobs: JobStore,
        webhooks: WebhookStore,
        client: httpx.AsyncClient,
        render: Callable[[JobRecord], Job],
        schedule_s: Sequence[float] = DEFAULT_SCHEDULE_S,
        *,
        concurrency: int = 16,
    ) -> None:
        self.jobs = jobs
        self.webhooks = webhooks
        self.client = client
        self.render = render
        self.schedule_s = list(schedule_s)
        self.concurrency = concurrency
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Deliver due webhooks until :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                due = await self.webhooks.claim(now_ms(), int(LEASE_S * 1000), self.concurrency)
                if due:
                    await asyncio.gather(*(self.deliver(job_id) for job_id in due))
                    continue
            except (RedisError, OSError) as exc:
                log.warning("webhooks: store unavailable (%s)", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), IDLE_SLEEP_S)

    def stop(self) -> None:
        self._stopping.set()

    async def deliver(self, job_id: str) -> None:
        stored = await self.jobs.get(job_id)
        url = stored.record.callback_url if stored is not None else None
        if stored is None or url is None:
            await self.webhooks.drop(job_id)  # expired or never wanted
            return
        record = stored.record
        done = await self.webhooks.attempts_made(job_id)
        secret = await self.webhooks.secret(record.tenant_id)
        body = payload(self.render(record))
        message_id = f"msg_{job_id}_{record.job.status.value}"
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "mediagate-webhooks",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
        }
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = await self.client.post(url, content=body, headers=headers, timeout=TIMEOUT_S)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        attempt_no = done + 1
        delivered = status is not None and 200 <= status < 300
        gone = status == 410
        next_due: int | None = None
        if not delivered and not gone and attempt_no < len(self.schedule_s):
            wait_s = self.schedule_s[attempt_no] * random.uniform(0.9, 1.1)
            next_due = now_ms() + int(wait_s * 1000)
        attempt = DeliveryAttempt(
            attempt=attempt_no,
            at=datetime.now(UTC),
            status_code=status,
            error=error,
            duration_ms=int((time.perf_counter() - started) * 1000),
            next_attempt_at=(
                datetime.now(UTC) + timedelta(milliseconds=next_due - now_ms())
                if next_due is not None
                else None
            ),
        )
        await self.webhooks.record(job_id, attempt, next_due)
