"""Credits and per-tenant limits as the job service and runner use them.

The exact parts live in Lua: holding credits and taking a job slot happen in the script
that creates the job, settling credits and freeing the slot in the script that saves it
terminal (``store/jobs.py``); the fallback re-reservation is one script of its own. This
module adds prices and the problems a client sees.
"""

from __future__ import annotations

from app.domain.errors import ErrorCode, GatewayError
from app.domain.models import ChargeReason, Job
from app.domain.operations import Operation
from app.jobs.prices import PriceBook
from app.store.credits import CreditLedger, HoldNotOpen, Shortfall
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

    def slot_limit(self, tenant: Tenant) -> int:
        return tenant.max_concurrent_jobs or self.default_max_concurrent_jobs

    async def price(self, operation: Operation, provider: str) -> int:
        return await self.prices.price(operation, provider)

    def charge_for(self, job: Job, reason: ChargeReason) -> int:
        """What the job is charged as it ends for ``reason``: its reserved price when the
        reason is a charged one (``ChargeReason.charged``), else nothing. The one place that
        decides the amount settled at a terminal state."""
        return job.credits.reserved if reason.charged else 0

    async def check_affordable(self, tenant: Tenant, price: int) -> None:
        """Refuse early, before media is stored; the binding check is at job creation."""
        balance = await self.ledger.balance(tenant.id)
        if balance.available < price:
            raise InsufficientCredits(price, balance.available)

    async def move_hold(self, tenant_id: str, job_id: str, price: int) -> Shortfall | None:
        """Re-reserve for a fallback provider at ``price``; a shortfall leaves the old hold."""
        try:
            moved = await self.ledger.adjust(tenant_id, job_id, price, reason="fallback")
        except HoldNotOpen:
            return None
        return moved if isinstance(moved, Shortfall) else None
