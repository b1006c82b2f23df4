"""Reconciling what the providers were paid with what tenants were charged.

Reads the upstream-spend stream (one entry per finished job, written by its terminal save) over
a time window and answers, per provider: the tasks it accepted, what they cost the provider
account (``upstream_cost`` of every attempt, in gateway credits), and the credits tenants were
charged for jobs it finished. Every job whose upstream was paid while its tenant was charged
nothing is listed with the reason:

- ``canceled_waived``: canceled after the upstream accepted the task, and the tenant's policy
  (``charge_accepted_work``) waives such charges;
- ``deadline_waived``: past its deadline after the upstream accepted the task, likewise;
- ``upstream_failed``: the upstream billed a task it reported failed (PixelAPI's
  ``credits_used`` on a failed job);
- ``not_accepted``: the upstream billed a submission it did not accept;
- ``unanswered``: the upstream got a submission and gave no answer; it may have run it;
- ``undelivered``: the upstream answered with a result the gateway could not keep (its
  output store failed, or the tenant's storage quota was full);
- ``free``: priced at 0 credits;
- ``unexplained``: none of these (a job that ended charged, or was priced, yet was charged
  nothing); the count of these is ``unexplained`` and should stay 0.

The reason is the ``charge_reason`` the paid attempt ended with (``app.jobs.lifecycle``).

Spend on attempts of a job that was charged (a fallback after a paid attempt) is in the
providers' totals but not listed: its tenant paid for the job.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from app.domain.models import ChargeReason, JobStatus
from app.domain.operations import Operation
from app.jobs.accounting import SpendRecord
from app.store.spend import SpendLog

MAX_JOBS = 100_000
"""A window reads at most this many finished jobs (``truncated`` says when it stopped)."""


class ProviderSpend(BaseModel):
    provider: str
    tasks_submitted: int = 0
    """Tasks the upstream accepted (or answered at once) for jobs finished in the window."""
    upstream_spend: float = 0.0
    """What they cost the provider account, in gateway credits (≈ $0.001)."""
    tenant_charges: int = 0
    """Credits charged to tenants for jobs this provider finished."""
    unpaid_jobs: int = 0
    """Jobs that paid this provider while their tenant was charged nothing."""


class UnpaidJob(BaseModel):
    job_id: str
    tenant_id: str
    operation: Operation
    status: JobStatus
    providers: list[str]
    """The providers that billed an attempt."""
    upstream_cost: float
    reason: str = Field(
        description="canceled_waived, deadline_waived, upstream_failed, not_accepted, "
        "unanswered, undelivered, free or unexplained"
    )
    detail: str
    finished_at: datetime


class Reconciliation(BaseModel):
    since: datetime
    until: datetime | None
    jobs: int
    """Jobs finished in the window."""
    truncated: bool
    """The window held more than ``MAX_JOBS`` finished jobs; only the first were read."""
    providers: list[ProviderSpend]
    unpaid: list[UnpaidJob]
    unexplained: int


async def reconcile(
    log: SpendLog, since: datetime, until: datetime | None, providers: list[str]
) -> Reconciliation:
    entries = await log.read(_ms(since), _ms(until) if until else None, limit=MAX_JOBS + 1)
    truncated = len(entries) > MAX_JOBS
    entries = entries[:MAX_JOBS]
    totals = {name: ProviderSpend(provider=name) for name in providers}
    unpaid: list[UnpaidJob] = []
    for entry in entries:
        record = SpendRecord.model_validate_json(entry.record)
        paid: dict[str, float] = {}
        for attempt in record.attempts:
            if attempt.upstream_cost is None:
                continue
            spend = totals.setdefault(attempt.provider, ProviderSpend(provider=attempt.provider))
            spend.tasks_submitted += 1
            spend.upstream_spend += attempt.upstream_cost
            if attempt.upstream_cost > 0:
                paid[attempt.provider] = paid.get(attempt.provider, 0.0) + attempt.upstream_cost
        if record.provider is not None and entry.charged:
            totals.setdefault(
                record.provider, ProviderSpend(provider=record.provider)
            ).tenant_charges += entry.charged
        if paid and entry.charged == 0:
            reason, detail = _reason(record, list(paid))
            for name in paid:
                totals[name].unpaid_jobs += 1
            unpaid.append(
                UnpaidJob(
                    job_id=record.job_id,
                    tenant_id=record.tenant_id,
                    operation=record.operation,
                    status=record.status,
                    providers=list(paid),
                    upstream_cost=sum(paid.values()),
                    reason=reason,
                    detail=detail,
                    finished_at=datetime.fromtimestamp(entry.at_ms / 1000, tz=UTC),
                )
            )
    for spend in totals.values():
        spend.upstream_spend = round(spend.upstream_spend, 6)
    return Reconciliation(
        since=since,
        until=until,
        jobs=len(entries),
        truncated=truncated,
        providers=sorted(totals.values(), key=lambda s: s.provider),
        unpaid=unpaid,
        unexplained=sum(1 for u in unpaid if u.reason == "unexplained"),
    )


def _reason(record: SpendRecord, paid: list[str]) -> tuple[str, str]:
    """Why a job that paid ``paid`` was charged nothing: the charge reason its paid attempt
    ended with, ``free``, or ``unexplained``."""
    names = ", ".join(paid)
    reasons = [a.charge_reason for a in record.attempts if a.provider in paid and a.upstream_cost]
    reason = reasons[-1] if reasons else None
    if reason is ChargeReason.canceled_waived:
        return reason.value, f"canceled after {names} accepted the task; policy waived the charge"
    if reason is ChargeReason.deadline_waived:
        return reason.value, f"past its deadline after {names} accepted the task; policy waived it"
    if reason is ChargeReason.upstream_failed:
        return reason.value, f"{names} billed a task it reported failed"
    if reason is ChargeReason.unanswered:
        return reason.value, f"{names} got a submission and gave no answer; it may have run it"
    if reason is ChargeReason.not_accepted:
        return reason.value, f"{names} billed a submission it did not accept"
    if reason is ChargeReason.undelivered:
        return reason.value, f"{names} answered with a result the gateway could not keep"
    if record.reserved == 0:
        return "free", "priced at 0 credits"
    ended = reason.value if reason is not None else "no charge reason"
    detail = f"{record.status.value} ({ended}) but charged nothing of {record.reserved}"
    return "unexplained", detail


def as_utc(moment: datetime) -> datetime:
    """``moment``, read as UTC when it names no offset (RFC 3339 asks for one; the window has
    always read a bare time as UTC). Naive and aware moments cannot be compared; these can."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _ms(moment: datetime) -> int:
    """Milliseconds since the epoch; a moment before it is the start of the log (stream ids
    cannot be negative)."""
    return max(0, int(as_utc(moment).timestamp() * 1000))
