"""Credits and per-tenant limits as the job service and runner use them.

The exact parts live in Lua: holding credits happens in the same script that creates the
job, settling in the same script that saves it terminal (``store/jobs.py``); concurrency
slots and the fallback re-reservation are one script each. This module adds prices and
the problem a client sees.
"""

from __future__ import annotations

from app.errors import ErrorCode, GatewayError
from app.jobs.operations import Operation
from app.jobs.prices import PriceBook
from app.store.credits import CreditLedger, HoldNotOpen, Shortfall
from app.store.rate_limits import ConcurrencySlots
from app.store.tenants import Tenant

SLOT_TTL_S = 6 * 3600
"""A slot outlives any job's deadline; a crashed process's slots expire after it."""


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
        slots: ConcurrencySlots,
        *,
        default_max_concurrent_jobs: int,
    ) -> None:
        self.ledger = ledger
        self.prices = prices
        self.slots = slots
        self.default_max_concurrent_jobs = default_max_concurrent_jobs

    async def price(self, operation: Operation, provider: str) -> int:
        return await self.prices.price(operation, provider)

    async def check_affordable(self, tenant: Tenant, price: int) -> None:
        """Refuse early, before media is stored; the binding check is at job creation."""
        balance = await self.ledger.balance(tenant.id)
        if balance.available < price:
            raise InsufficientCredits(price, balance.available)

    async def take_slot(self, tenant: Tenant, job_id: str) -> None:
        limit = tenant.max_concurrent_jobs or self.default_max_concurrent_jobs
        if not await self.slots.acquire(_slots_key(tenant.id), job_id, limit, SLOT_TTL_S):
            raise TooManyJobs(limit)

    async def free_slot(self, tenant_id: str, job_id: str) -> None:
        await self.slots.release(_slots_key(tenant_id), job_id)

    async def move_hold(self, tenant_id: str, job_id: str, price: int) -> Shortfall | None:
        """Re-reserve for a fallback provider at ``price``; a shortfall leaves the old hold."""
        try:
            moved = await self.ledger.adjust(tenant_id, job_id, price, reason="fallback")
        except HoldNotOpen:
            return None
        return moved if isinstance(moved, Shortfall) else None


def _slots_key(tenant_id: str) -> str:
    return f"tenant-jobs:{{{tenant_id}}}"
