"""Job records, the due-queue and leases in Redis.

A job is a hash (``keys.job``) holding the record as JSON plus the fields the Lua scripts
check: ``version`` (bumped on every write), ``status``, ``tenant`` and the current ``lease``
token. Every write goes through ``save_job.lua``, which refuses a stale version, a lost lease
or a terminal job, so two processes can never both move a job forward. With replicas asked
for (``ReplicaWait``), the creation and every save are waited for on them
(``app.store.replicated``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from app.domain.models import Job, JobRecord, JobStatus, WebhookEvent
from app.store import keys, replicated
from app.store.connection import ReplicaWait
from app.store.credits import Pricing, Shortfall, pricing_args
from app.store.rate_limits import RateCheck, RateRefused, decision_of
from app.store.scripts import Scripts
from app.store.storage import BlobEntry, ScheduledOutputs, outputs_refused

log = logging.getLogger(__name__)

SAVE_RETRY_S = 0.05
"""The first pause before :meth:`JobStore.save_surely` tries a save again (doubled after each
failure)."""


def now_ms() -> int:
    return int(time.time() * 1000)


def settle_reason(job: Job) -> str:
    """The ledger's reason for a terminal save's credit movement."""
    served = " from the result cache" if job.cache == "hit" else ""
    return f"{job.operation.value} {job.status.value}{served}"


def webhook_delivery(record: JobRecord, event: WebhookEvent | None) -> tuple[int | str, str]:
    """``(due_ms, delivery id)`` of the webhook a save queues, or ``("", "")`` for none.

    A job's end is delivered as the job id; ``job.started`` and ``job.progress`` as
    ``<job id>#started`` and ``<job id>#progress`` (a progress delivery still waiting is
    simply made due again: receivers get the latest progress, not every step)."""
    job = record.job
    if record.callback_url is None:
        return "", ""
    if job.status.terminal:
        event = WebhookEvent(f"job.{job.status.value}")
    if event is None or event not in record.webhook_events:
        return "", ""
    member = job.id if job.status.terminal else f"{job.id}#{event.suffix}"
    return now_ms(), member


class Schedule(StrEnum):
    due = "due"
    """Release the lease and hand the job to a worker at ``due_ms``."""
    release = "release"
    """Release the lease and take the job off the queues (terminal)."""
    keep = "keep"
    """Keep the lease: the caller goes on working on the job."""


class Settle(StrEnum):
    """What a terminal save does with the job's credit hold."""

    charge = "charge"
    release = "release"


@dataclass(frozen=True)
class Charge:
    """What a terminal save bills: ``amount`` credits (never more than the hold; the rest is
    refunded in the same script), priced as ``pricing`` says."""

    amount: int
    pricing: Pricing | None = None


SPEND_MAX_LEN = 1_000_000
"""The upstream-spend stream keeps about this many finished jobs (oldest trimmed first)."""

SETTLED_HOLD_TTL_S = 7 * 86400
SLOT_TTL_S = 6 * 3600
"""A job slot outlives any job; if a job were somehow never finished, its slot frees itself."""


@dataclass(frozen=True)
class JobExists:
    """A job with the id exists already: nothing was written."""


@dataclass(frozen=True)
class JobSlotsFull:
    """The tenant already has ``limit`` unfinished jobs."""

    limit: int


class SaveRefused(Exception):
    """The record changed under us (``stale``), the lease was lost, or the job is finished."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Stored:
    """A record as read from Redis, with the version a save must match."""

    record: JobRecord
    version: int
    lease: str | None = None
    due_ms: int | None = None
    """When the job was due, for one claimed from the due-queue: how late its step runs."""
    output: BlobEntry | None = None
    """For a job just created leased: its output's deletion, scheduled with the creation (0
    bytes; see ``app/store/storage.py``), for its first step to write the output under. A save
    that releases the lease while it is set drops the entry: the step that writes under it
    clears it first, so an entry whose bytes may exist is never dropped."""


_READ = ("body", "version", "lease")


def _stored(row: list[Any]) -> Stored | None:
    body, version, lease = row
    if body is None:
        return None
    return Stored(
        JobRecord.model_validate_json(body),
        int(str(version)),
        str(lease) if lease is not None else None,
    )


class JobStore:
    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        *,
        retention_s: int,
        replica_wait: ReplicaWait | None = None,
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.retention_s = retention_s
        self.replica_wait = replica_wait or ReplicaWait()

    async def create(
        self,
        record: JobRecord,
        *,
        price: int,
        slot_limit: int,
        lease_s: float | None = None,
        pricing: Pricing | None = None,
        rate: RateCheck | None = None,
        output: BlobEntry | None = None,
    ) -> Stored | Shortfall | JobSlotsFull | JobExists:
        """Store a new job, take a tenant job slot and hold ``price`` credits, atomically.

        The job is due now, or leased to the caller for ``lease_s`` seconds. When the tenant
        cannot afford it, or already has ``slot_limit`` unfinished jobs, or a job with its id
        exists (made by an earlier attempt of the same request), nothing is written.
        With ``rate``, the request is counted against its rate limit first, in the same script
        (``RateRefused``, and nothing written, when over it). With ``output`` (a job created
        leased), its output's deletion is scheduled in the same script, and the returned
        state carries it (``Stored.output``).
        """
        assert output is None or lease_s, "an output is scheduled for a job run at once"
        job = record.job
        tenant = record.tenant_id
        created = int(job.created_at.timestamp() * 1000)
        token = _new_token() if lease_s else ""
        expiry = now_ms() + int((lease_s or 0) * 1000)
        script_keys = [
            keys.job(job.id),
            keys.DUE,
            keys.LEASES,
            keys.tenant_jobs(tenant),
            *keys.credit_hold_keys(tenant, job.id),
            keys.tenant_job_slots(tenant),
            keys.BLOB_EXPIRIES,
        ]
        script_args = [
            record.model_dump_json(),
            job.status.value,
            tenant,
            created,
            token,
            expiry,
            job.id,
            price,
            job.operation.value,
            slot_limit,
            SLOT_TTL_S * 1000,
            *pricing_args(pricing),
            output.member if output is not None else "",
            output.expires_ms if output is not None else 0,
        ]
        if rate is not None:
            bucket, *rate_args = rate.script_args()
            script_keys.append(bucket)
            script_args += rate_args
            rate.sent = True  # counted from here, whatever the answer (or a lost connection)
        try:
            if self.replica_wait.replicas:
                ok, *available = await replicated.create_job(
                    self.redis, self.scripts, self.replica_wait, script_keys, script_args
                )
            else:
                ok, *available = await self.scripts.create_job(keys=script_keys, args=script_args)
        except ResponseError as exc:
            if str(exc) != "exists":
                raise
            return JobExists()
        if int(ok) == -2:
            assert rate is not None
            raise RateRefused(decision_of([0, *available], rate.burst))
        if int(ok) == -1:
            return JobSlotsFull(limit=slot_limit)
        if int(ok) == 0:
            return Shortfall(required=price, available=int(available[0]))
        return Stored(record, 1, token or None, output=output)

    async def get(self, job_id: str) -> Stored | None:
        return _stored(await self.redis.hmget(keys.job(job_id), *_READ))

    async def read_counted(self, job_id: str | None, rate: RateCheck) -> str | None:
        """The job's stored record as it is (JSON; None when unknown), read by a request
        counted against ``rate`` first, in the same script (``RateRefused`` when over it).
        Without a job id, only the request is counted."""
        bucket, *rate_args = rate.script_args()
        rate.sent = True
        job_keys = [keys.job(job_id)] if job_id is not None else []
        answer = await self.scripts.read_job(keys=[bucket, *job_keys], args=rate_args)
        if not int(answer[0]):
            raise RateRefused(decision_of(answer, rate.burst))
        return _text(answer[4]) if len(answer) > 4 else None

    async def save(
        self,
        stored: Stored,
        *,
        schedule: Schedule,
        due_ms: int = 0,
        lease: str | None = None,
        unleased: bool = False,
        settle: Settle | None = None,
        charge: Charge | None = None,
        spend: str | None = None,
        event: WebhookEvent | None = None,
        outputs: ScheduledOutputs | None = None,
    ) -> Stored:
        """Write ``stored.record`` if it is still at ``stored.version``; returns the new state.
        With ``lease``, only while that lease holds the job; ``unleased`` (no ``lease``), only
        while no worker holds it (refused ``leased``: a claim does not move the version).

        A terminal save queues the job's webhook (``job.<status>``), and a save naming an
        ``event`` (``job.started``, ``job.progress``) queues that one, in the same script,
        when the job has a callback URL subscribed to the event.

        With ``settle``, the job's credit hold is charged or released in the same script;
        a charge bills ``charge.amount`` (default: the whole hold) and refunds the rest;
        ``record.job.credits.charged`` is set to what was charged. ``spend`` (JSON) is
        appended to the upstream-spend stream by a terminal save, with the credits charged.

        With ``outputs`` (a terminal save), the outputs written under the ids the job's
        creation scheduled are counted against the tenant's storage quota in the same script:
        past it nothing is written and ``QuotaExceeded`` is raised (``OutputUnscheduled`` when
        a sweeper has claimed their entries meanwhile).
        """
        assert outputs is None or stored.record.job.status.terminal, "kept by a terminal save"
        record = stored.record
        job = record.job
        status = job.status
        ttl = self.retention_s if status.terminal else 0
        webhook_due, webhook = webhook_delivery(record, event)
        script_keys = [
            keys.job(job.id),
            keys.DUE,
            keys.LEASES,
            *keys.credit_hold_keys(record.tenant_id, job.id),
            keys.tenant_job_slots(record.tenant_id),
            keys.WEBHOOKS_DUE,
            keys.SPEND,
            keys.BLOB_EXPIRIES,
        ]
        if outputs is not None:
            script_keys += outputs.script_keys()
        # a scheduled output nothing was written under, and nothing will be: its entry goes
        unused = stored.output if schedule is not Schedule.keep and outputs is None else None
        script_args: list[int | str] = [
            stored.version,
            lease or ("-" if unleased else ""),
            record.model_dump_json(),
            status.value,
            schedule.value,
            due_ms,
            ttl,
            keys.job_events(job.id),
            job.id,
            settle.value if settle else "",
            settle_reason(job),
            SETTLED_HOLD_TTL_S,
            webhook_due,
            "" if charge is None else charge.amount,
            *pricing_args(charge.pricing if charge is not None else None),
            spend if spend is not None and status.terminal else "",
            SPEND_MAX_LEN,
            webhook,
            unused.member if unused is not None else "",
            *(outputs.script_args() if outputs is not None else ()),
        ]
        try:
            if self.replica_wait.replicas:
                version, settled = await replicated.save_job(
                    self.redis, self.scripts, self.replica_wait, script_keys, script_args, job.id
                )
            else:
                version, settled = await self.scripts.save_job(keys=script_keys, args=script_args)
        except ResponseError as exc:
            refused = outputs_refused(str(exc), outputs) if outputs is not None else None
            if refused is not None:
                raise refused from None
            raise SaveRefused(str(exc)) from exc
        if settle is Settle.charge:
            job.credits.charged = int(settled)
        if schedule is Schedule.keep:  # the caller goes on under the same lease
            return Stored(record, int(version), lease, output=stored.output)
        return Stored(record, int(version))

    async def save_surely(
        self,
        save: Callable[[], Awaitable[Stored]],
        job_id: str,
        landed: Callable[[JobRecord], bool],
        *,
        within_s: float,
    ) -> Stored:
        """Run ``save`` (one :meth:`save` of the job), tried again after a Redis error (a
        blip, a failover) with a doubling pause (from ``SAVE_RETRY_S``, at most a sixth of
        ``within_s``) for up to ``within_s`` after the first error; then the error is raised.
        For saves nothing may replace, such as one recording what an upstream accepted (the
        caller's lease is renewed meanwhile).

        A save whose answer was lost may have been applied: the one tried again is then
        refused (its version moved on; a lease it released is gone; a terminal job is not
        rewritten). So after a lost answer a refusal reads the job back: a record ``landed``
        says holds what the save wrote is the saved state, returned as a save releasing the
        lease returns it; any other record leaves the refusal standing."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + within_s
        pause = SAVE_RETRY_S
        lost = False  # a save before this one may have been applied
        while True:
            try:
                try:
                    return await save()
                except SaveRefused:
                    if not lost:
                        raise
                    found = await self.get(job_id)
                    if found is None or not landed(found.record):
                        raise
                    log.info("job %s: a save whose answer was lost had been applied", job_id)
                    return Stored(found.record, found.version)
            except (RedisError, OSError) as exc:
                lost = True
                if loop.time() + pause > give_up:
                    raise
                log.warning("job %s: a save failed (%s); again in %.2f s", job_id, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, within_s / 6)

    async def claim(self, limit: int, lease_s: float) -> list[Stored]:
        """Lease up to ``limit`` due jobs (recovering those whose worker died)."""
        token = _new_token()
        now = now_ms()
        flat = await self.scripts.claim_jobs(
            keys=[keys.DUE, keys.LEASES],
            args=[now, now + int(lease_s * 1000), limit, token, keys.job("")],
        )
        return [
            Stored(
                JobRecord.model_validate_json(flat[i + 2]),
                int(flat[i + 1]),
                token,
                due_ms=int(float(flat[i + 3])),
            )
            for i in range(0, len(flat), 4)
        ]

    async def renew(self, job_id: str, lease: str, lease_s: float) -> bool:
        renewed = await self.scripts.renew_lease(
            keys=[keys.job(job_id), keys.LEASES],
            args=[lease, now_ms() + int(lease_s * 1000), job_id],
        )
        return bool(renewed)

    async def list_ids(self, tenant_id: str, *, before: str | None, limit: int) -> list[str]:
        """A tenant's job ids, newest first, strictly older than the cursor id ``before``."""
        index = keys.tenant_jobs(tenant_id)
        if before is None:
            return [str(i) for i in await self.redis.zrevrange(index, 0, limit - 1)]
        score = await self.redis.zscore(index, before)
        if score is None:
            return []
        # Ids sort like their creation time; ties on the millisecond are broken by id.
        ids = await self.redis.zrevrangebyscore(index, score, "-inf", start=0, num=limit + 64)
        return [str(i) for i in ids if str(i) < before][:limit]

    async def get_many(self, job_ids: list[str]) -> list[Stored | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(keys.job(job_id), "body", "version")
            rows = await pipe.execute()
        return [
            Stored(JobRecord.model_validate_json(body), int(version)) if body else None
            for body, version in rows
        ]

    async def prune_index(self, tenant_id: str, job_ids: list[str]) -> None:
        if job_ids:
            await self.redis.zrem(keys.tenant_jobs(tenant_id), *job_ids)

    async def queue_depth(self) -> int:
        return int(await self.redis.zcard(keys.DUE))

    async def next_due_in_s(self) -> float | None:
        """How soon the earliest job in the due-queue comes due (≤ 0: due now); None: empty."""
        first = await self.redis.zrange(keys.DUE, 0, 0, withscores=True)
        if not first:
            return None
        return (float(first[0][1]) - now_ms()) / 1000

    async def expedite(self, job_id: str) -> bool:
        """Make a job that waits in the due-queue due now; True when it was moved earlier.

        One command, ``ZADD XX LT CH``, so nothing can come between a check and the write:
        ``XX`` touches only a job already in the due-queue (a leased job sits in ``LEASES``
        instead, so a step in progress is never raced; a finished or unknown job is in
        neither and is not added), ``LT`` only ever moves a due time earlier.
        """
        changed = await self.redis.zadd(keys.DUE, {job_id: now_ms()}, xx=True, lt=True, ch=True)
        return bool(changed)

    async def status_of(self, job_id: str) -> JobStatus | None:
        value = await self.redis.hget(keys.job(job_id), "status")
        return JobStatus(str(value)) if value else None


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _new_token() -> str:
    return os.urandom(12).hex()
