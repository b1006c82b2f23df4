"""Credits and per-tenant limits as the job service and runner use them.

The exact parts live in Lua: holding credits and taking a job slot happen in the script
that creates the job, settling credits and freeing the slot in the script that saves it
terminal (``store/jobs.py``); the fallback re-reservation is one script of its own. This
module prices jobs by the unit (:mod:`app.jobs.prices`), decides what a terminal state
charges (:meth:`Accounting.charge_for`, called by ``app.jobs.lifecycle``), prices what each
upstream task cost the provider account (:meth:`Accounting.settle_upstream_costs`), and
raises the problems a client sees.

A job is quoted at submission for the most it can cost (the hold) and, when it ends, for what
it did; the terminal save charges the second and refunds the rest. The rule is the one in force
at submission (its unit and rate are kept on the job), so an override made meanwhile does not
change what a running job pays.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

from pydantic import BaseModel

from app.domain.errors import ErrorCode, GatewayError
from app.domain.models import Attempt, AttemptStatus, ChargeReason, JobRecord, JobStatus, Measure
from app.domain.operations import PARAMS, Operation, Params
from app.jobs.prices import PriceBook, PriceUnit, Quote
from app.jobs.prices.defaults import BILLING, Billing
from app.jobs.prices.measure import done_units, requested_units
from app.jobs.prices.rules import parse_rate, render
from app.store.credits import CreditLedger, HoldNotOpen, Pricing, Shortfall
from app.store.jobs import Charge
from app.store.spend import SpendLog
from app.store.tenants import Tenant


class InsufficientCredits(GatewayError):
    def __init__(self, required: int, available: int) -> None:
        super().__init__(
            f"this job needs {required} credits; {available} are available",
            ErrorCode.insufficient_credits,
            402,
        )
        self.extra = {"required": required, "available": available}


class TooManyJobs(GatewayError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"at most {limit} unfinished jobs at once; wait for one to finish",
            ErrorCode.rate_limited,
            429,
        )
        self.extra = {"limit": limit, "scope": "concurrent_jobs"}


class SpendAttempt(BaseModel):
    provider: str
    provider_job_id: str | None = None
    status: AttemptStatus
    charge_reason: ChargeReason | None = None
    upstream_cost: float | None = None
    reported: bool = False


class SpendRecord(BaseModel):
    """A finished job as reconciliation reads it (the upstream-spend stream's ``record``)."""

    job_id: str
    tenant_id: str
    operation: Operation
    provider: str | None
    status: JobStatus
    error_code: str | None = None
    reserved: int = 0
    attempts: list[SpendAttempt]


class Accounting:
    def __init__(
        self,
        ledger: CreditLedger,
        prices: PriceBook,
        *,
        default_max_concurrent_jobs: int,
    ) -> None:
        self.ledger = ledger
        self.prices = prices
        self.default_max_concurrent_jobs = default_max_concurrent_jobs
        self.spend_log = SpendLog(ledger.redis)
        """The upstream-spend stream that terminal saves append to (for reconciliation)."""

    def slot_limit(self, tenant: Tenant) -> int:
        return tenant.max_concurrent_jobs or self.default_max_concurrent_jobs

    async def quote(
        self, operation: Operation, provider: str, params: Params, measure: Measure
    ) -> Quote:
        """The most a request can cost at ``provider``: what submission reserves."""
        rule = await self.prices.rule(operation, provider)
        binding = self.prices.providers.bindings(operation)[provider]
        return rule.quote(requested_units(rule.unit, measure, params, binding))

    async def media_priced(self, operation: Operation, provider: str) -> bool:
        """The binding's rule goes by what the media measures (seconds, megapixels)."""
        rule = await self.prices.rule(operation, provider)
        return rule.unit in (PriceUnit.second, PriceUnit.megapixel)

    async def requote(self, record: JobRecord, provider: str) -> Quote:
        """The most the job can cost at ``provider`` (a fallback), from its measurements."""
        job = record.job
        params = PARAMS[job.operation].model_validate(record.params)
        return await self.quote(job.operation, provider, params, record.measure or Measure())

    async def check_affordable(self, tenant: Tenant, price: int) -> None:
        """Refuse early, before media is stored; the binding check is at job creation."""
        account = await self.ledger.account(tenant.id)
        if account.available < price:
            raise InsufficientCredits(price, account.available)

    async def move_hold(self, tenant_id: str, job_id: str, quote: Quote) -> Shortfall | None:
        """Re-reserve for a fallback provider at ``quote``; a shortfall leaves the old hold."""
        try:
            moved = await self.ledger.adjust(
                tenant_id, job_id, quote.amount, reason="fallback", pricing=quote.pricing
            )
        except HoldNotOpen:
            return None
        return moved if isinstance(moved, Shortfall) else None

    # -- the end of a job -----------------------------------------------------------------

    def charge_for(self, record: JobRecord, reason: ChargeReason | None) -> Charge | None:
        """What the job is charged as it ends for ``reason`` (``None``: nothing to charge, the
        hold is released). The one place that decides the amount settled at a terminal state:

        - ``delivered``: the work done, measured by the job's rule (outputs, their duration and
          size), never more than the hold; the terminal save refunds the rest;
        - another charged reason (canceled or past its deadline after the upstream accepted
          the task): the reservation, i.e. what the request measured;
        - otherwise nothing.

        Records the charged quantity on the job."""
        credits = record.job.credits
        if reason is None or not reason.charged:
            return None
        if credits.unit is None or credits.rate is None or credits.quantity is None:
            return Charge(credits.reserved)  # a job priced before rules went by the unit
        unit = PriceUnit(credits.unit)
        done = None
        if reason is ChargeReason.delivered:
            done = done_units(unit, record.measure or Measure(), record.job.output)
        exact = None if done is None else (done.numerator, done.denominator)
        quantity, amount, pricing = _settled(unit, credits.rate, credits.quantity, exact)
        credits.quantity = quantity
        return Charge(min(amount, credits.reserved), pricing)

    def settle_upstream_costs(self, record: JobRecord) -> None:
        """Give every attempt that reached the upstream its final ``upstream_cost``: what the
        upstream reported, else what its document prices the work at, when the provider bills
        for how the attempt ended (see :data:`~app.jobs.prices.defaults.BILLING`): a result
        always, one the gateway could not keep (``undelivered``) too, at what the request
        measured; any task it accepted where the provider bills every queued task; a task
        abandoned while it ran (canceled, past the deadline) where it bills accepted tasks
        unless they fail; a task the upstream said failed only where it bills every queued
        task."""
        for attempt in record.job.attempts:
            if attempt.upstream_cost_reported:
                continue
            if attempt.charge_reason is ChargeReason.undelivered:  # a result came: it is billed
                attempt.upstream_cost = float(
                    self.document_cost(record, attempt.provider, done=False)
                )
                continue
            succeeded = attempt.status is AttemptStatus.succeeded
            billing = BILLING.get(attempt.provider, Billing.accepted)
            if attempt.charge_reason is ChargeReason.unanswered:
                # It went out whole and no answer came: counted at the document's price, as
                # the upstream may bill it; except where it bills results only and drops a
                # task nobody polls (Perfect: "No credit will be consumed in this case").
                adapter = self.prices.providers.get(attempt.provider)
                drops_unpolled = adapter is not None and adapter.max_poll_gap_s is not None
                may_bill = billing is not Billing.success or not drops_unpolled
                attempt.upstream_cost = (
                    float(self.document_cost(record, attempt.provider, done=False))
                    if may_bill
                    else 0.0
                )
                continue
            if attempt.provider_job_id is None and not succeeded:
                attempt.upstream_cost = None  # the upstream never had the task
                continue
            abandoned = attempt.charge_reason in _ABANDONED or attempt.status in (
                AttemptStatus.submitting,
                AttemptStatus.running,
            )
            billed = (
                succeeded
                or billing is Billing.queued
                or (billing is Billing.accepted and abandoned)
            )
            attempt.upstream_cost = (
                float(self.document_cost(record, attempt.provider, done=succeeded))
                if billed
                else 0.0
            )

    def document_cost(self, record: JobRecord, provider: str, *, done: bool) -> int:
        """What ``provider``'s document prices this job's task at, in gateway credits: the
        work done when ``done``, else what the request measured."""
        job = record.job
        adapter = self.prices.providers.get(provider)
        if adapter is None or job.operation not in adapter.bindings:
            return 0
        rule = self.prices.default(job.operation, provider)
        measure = record.measure or Measure()
        units = None
        if done:
            units = done_units(rule.unit, measure, job.output)
        if units is None:
            params = PARAMS[job.operation].model_validate(record.params)
            units = requested_units(rule.unit, measure, params, adapter.bindings[job.operation])
        return rule.quote(units).amount

    def spend_record(self, record: JobRecord) -> str:
        """The JSON the terminal save appends to the upstream-spend stream."""
        job = record.job
        return SpendRecord(
            job_id=job.id,
            tenant_id=record.tenant_id,
            operation=job.operation,
            provider=job.provider,
            status=job.status,
            error_code=job.error.code.value if job.error is not None else None,
            reserved=job.credits.reserved,
            attempts=[
                SpendAttempt(
                    provider=a.provider,
                    provider_job_id=a.provider_job_id,
                    status=a.status,
                    charge_reason=a.charge_reason,
                    upstream_cost=a.upstream_cost,
                    reported=a.upstream_cost_reported,
                )
                for a in job.attempts
            ],
        ).model_dump_json()


def note_reported_cost(attempt: Attempt, result: object) -> None:
    """Keep what the upstream says the attempt's task costs (PixelAPI ``credits_used``)."""
    cost = getattr(result, "cost", None)
    if isinstance(cost, int | float):
        attempt.upstream_cost = float(cost)
        attempt.upstream_cost_reported = True


def note_quote(record: JobRecord, quote: Quote) -> None:
    """Keep on the job what it was reserved for, and by which rule."""
    credits = record.job.credits
    pricing = quote.pricing
    credits.reserved = quote.amount
    credits.unit = pricing.unit
    credits.rate = pricing.rate
    credits.quantity = float(quote.quantity)


_ABANDONED = frozenset(
    {
        ChargeReason.canceled_after_accept,
        ChargeReason.canceled_waived,
        ChargeReason.deadline_after_accept,
        ChargeReason.deadline_waived,
    }
)
"""Attempts ended by the gateway while the upstream still had the task."""


@lru_cache(maxsize=4096)
def _settled(
    unit: PriceUnit, rate: str, reserved: float, done: tuple[int, int] | None
) -> tuple[float, int, Pricing]:
    """The quantity charged, its amount (before the hold bounds it) and how it was reached,
    for a job reserved for ``reserved`` units at ``rate`` that did ``done`` (a fraction's
    numerator and denominator; ``None``: the reservation stands). Worked out once per
    combination, in exact arithmetic: most jobs end on one of a few."""
    exact_rate = parse_rate(rate)
    quantity = _quantity(reserved)
    if done is not None:
        quantity = min(Fraction(*done), quantity)
    amount = math.ceil(quantity * exact_rate)
    return float(quantity), amount, Pricing(unit.value, render(quantity), render(exact_rate))


@lru_cache(maxsize=1024)
def _quantity(value: float) -> Fraction:
    """A quantity kept on the job (a decimal of at most six places) as an exact one; parsed
    once per value, since most jobs end on one of a few (one job, one output)."""
    return Fraction(str(value))
