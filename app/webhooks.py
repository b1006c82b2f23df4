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

**Events.** A delivery id on the queue names what is sent: a job id its end
(``job.succeeded``, ``job.failed``, ``job.canceled``), ``<job id>#started`` and
``<job id>#progress`` those events (queued only for jobs subscribed to them, by the saves
that make them happen), and a batch id its ``batch.completed``. Each id keeps its own log of
attempts and its own retry schedule.

**One receiver cannot delay another.** Deliveries run as tasks of their own, up to
``concurrency`` at once per sender, and a free place is filled as soon as one ends (no batch
waits for its slowest member). At most ``per_endpoint`` of them go to one receiver (scheme,
host and port) of one tenant, and ``per_tenant`` belong to one tenant; a claimed delivery
beyond either goes back to the queue, with no attempt counted, for about 0.1 s while those
places turn over quickly and about 2 s once one of them has been held over a second (a slow
receiver is not asked again and again). A tenant
whose receiver hangs thus holds no place of another tenant's deliveries, even to the same
host. Each attempt has one deadline (``timeout_s``) from connecting to the status line; the
receiver's body is never read.
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
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel
from redis.exceptions import RedisError

from app.domain.models import Job, JobRecord
from app.store.jobs import JobStore, now_ms
from app.store.webhooks import DeliveryAttempt, WebhookStore

log = logging.getLogger(__name__)

DEFAULT_SCHEDULE_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
LEASE_S = 30.0
TIMEOUT_S = 10.0
IDLE_SLEEP_S = 0.1
IDLE_SLEEP_MAX_S = 0.4
"""Pauses between claims that find nothing double from ``IDLE_SLEEP_S`` up to this: an idle
sender costs little, and a delivery waits at most this long beyond its time."""
SLOW_S = 1.0
"""A receiver whose oldest delivery in flight started longer ago than this counts as slow."""
BUSY_RETRY_S = 0.1
"""A delivery whose receiver or tenant has all its places taken is due again after 1-1.5×
this while those places turn over quickly, ..."""
SLOW_RETRY_S = 2.0
"""... or after 1-1.5× this when one of them has been held longer than ``SLOW_S``."""


def _endpoint(url: str) -> str:
    """The receiver a URL reaches: scheme, host and port."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port or ''}"


class _Places:
    """Deliveries in flight per key (a tenant's receiver, or a tenant): when each started."""

    def __init__(self) -> None:
        self._started: dict[str, list[float]] = {}

    def count(self, key: str) -> int:
        return len(self._started.get(key, ()))

    def held_since(self, key: str) -> float:
        """When the oldest delivery in flight for ``key`` started."""
        return min(self._started[key])

    def take(self, key: str, now: float) -> None:
        self._started.setdefault(key, []).append(now)

    def give_back(self, key: str, started: float) -> None:
        held = self._started[key]
        held.remove(started)
        if not held:
            del self._started[key]


def _jittered_ms(seconds: float) -> int:
    return int(seconds * random.uniform(1.0, 1.5) * 1000)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payload(job: Job, event: str | None = None) -> bytes:
    """The event body: ``job`` is the job as a client reads it (``JobRenderer``); the type is
    ``event``, by default the job's end."""
    return envelope(event or f"job.{job.status.value}", job)


def envelope(event: str, data: BaseModel) -> bytes:
    return json.dumps(
        {
            "type": event,
            "timestamp": datetime.now(UTC).isoformat(),
            "data": data.model_dump(mode="json"),
        },
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True)
class Message:
    """One event ready to go: who it belongs to, where, and what."""

    tenant_id: str
    url: str
    event: str
    message_id: str
    body: bytes


BatchMessages = Callable[[str], Awaitable[Message | None]]
"""A batch's ``batch.completed`` message, or ``None`` (expired, or no callback URL)."""


class WebhookSender:
    def __init__(
        self,
        jobs: JobStore,
        webhooks: WebhookStore,
        client: httpx.AsyncClient,
        render: Callable[[JobRecord], Job],
        schedule_s: Sequence[float] = DEFAULT_SCHEDULE_S,
        *,
        batches: BatchMessages | None = None,
        concurrency: int = 64,
        per_endpoint: int = 2,
        per_tenant: int = 8,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.jobs = jobs
        self.webhooks = webhooks
        self.client = client
        self.render = render
        self.batches = batches
        self.schedule_s = list(schedule_s)
        self.concurrency = concurrency
        self.per_endpoint = per_endpoint
        self.per_tenant = per_tenant
        self.timeout_s = timeout_s
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._endpoints = _Places()
        self._tenants = _Places()

    async def run(self) -> None:
        """Deliver due webhooks until :meth:`stop`; then let those under way finish. Canceled,
        it cancels them (their leases run out and they are due again)."""
        try:
            await self._loop()
        except asyncio.CancelledError:
            for task in self._tasks:
                task.cancel()
            raise

    async def _loop(self) -> None:
        idle = IDLE_SLEEP_S
        while not self._stopping.is_set():
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                await asyncio.wait(self._tasks, timeout=IDLE_SLEEP_S)
                continue
            try:
                due = await self.webhooks.claim(now_ms(), int(LEASE_S * 1000), free)
            except (RedisError, OSError) as exc:
                log.warning("webhooks: store unavailable (%s)", exc)
                due = []
            for job_id in due:
                task = asyncio.create_task(self._deliver_logged(job_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            idle = IDLE_SLEEP_S if due else min(idle * 2, IDLE_SLEEP_MAX_S)
            if len(due) < free:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), idle)
            else:
                await asyncio.sleep(0)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.timeout_s + 1)

    def stop(self) -> None:
        self._stopping.set()

    async def _deliver_logged(self, job_id: str) -> None:
        try:
            await self.deliver(job_id)
        except (RedisError, OSError) as exc:
            log.warning("webhooks: %s left due (%s)", job_id, exc)  # its lease runs out
        except Exception:
            log.exception("webhooks: delivering %s failed; its lease will expire", job_id)

    async def message(self, delivery_id: str) -> Message | None:
        """What a queued delivery sends now, or ``None`` when there is nothing to send."""
        if delivery_id.startswith("batch_"):
            return await self.batches(delivery_id) if self.batches is not None else None
        job_id, _, suffix = delivery_id.partition("#")
        stored = await self.jobs.get(job_id)
        url = stored.record.callback_url if stored is not None else None
        if stored is None or url is None:
            return None
        record = stored.record
        job = self.render(record)
        event = f"job.{suffix}" if suffix else f"job.{job.status.value}"
        message_id = f"msg_{job_id}_{suffix or job.status.value}"
        if suffix == "progress":  # one message per progress step
            message_id += f"_{round((job.progress or 0) * 100)}"
        return Message(record.tenant_id, url, event, message_id, payload(job, event))

    async def deliver(self, job_id: str) -> None:
        message = await self.message(job_id)
        if message is None:
            await self.webhooks.drop(job_id)  # expired or never wanted
            return
        tenant = message.tenant_id
        endpoint = f"{tenant} {_endpoint(message.url)}"  # one tenant's never hold another's
        now = time.monotonic()
        full = [
            places.held_since(key)
            for places, key, limit in (
                (self._endpoints, endpoint, self.per_endpoint),
                (self._tenants, tenant, self.per_tenant),
            )
            if places.count(key) >= limit
        ]
        if full:
            slow = any(now - since > SLOW_S for since in full)
            wait_s = SLOW_RETRY_S if slow else BUSY_RETRY_S
            await self.webhooks.postpone(job_id, now_ms() + _jittered_ms(wait_s))
            return
        self._endpoints.take(endpoint, now)
        self._tenants.take(tenant, now)
        try:
            await self._attempt(job_id, message)
        finally:
            self._endpoints.give_back(endpoint, now)
            self._tenants.give_back(tenant, now)

    async def _attempt(self, job_id: str, message: Message) -> None:
        done = await self.webhooks.attempts_made(job_id)
        secret = await self.webhooks.secret(message.tenant_id)
        body = message.body
        message_id = message.message_id
        url = message.url
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
            status = await self._post(url, body, headers)
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g} s"
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
            event=message.event,
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

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the status; the whole exchange up to the status line within
        ``timeout_s`` (TimeoutError), the answer's body left unread."""
        timeout = httpx.Timeout(self.timeout_s, connect=min(5.0, self.timeout_s))
        async with asyncio.timeout(self.timeout_s):
            request = self.client.stream(
                "POST", url, content=body, headers=headers, timeout=timeout
            )
            async with request as response:
                return response.status_code
