"""Tenant credits: an account, holds for running jobs, and an append-only ledger.

Each tenant has a credit account of a ``balance`` and a ``reserved`` amount (integer gateway
credits); ``available = balance - reserved``. A job *reserves* its price when it is created
(a hold, one per job, taken by ``create_job.lua`` with the job: :meth:`JobStore.create`), may
*adjust* it (:meth:`CreditLedger.adjust`: fallback to a pricier provider), and is finally
*charged* (success) or *released* (failure, block, cancel) by its terminal save
(``save_job.lua``: :meth:`JobStore.save`). A hold is the most the job can cost; the charge
bills the actual amount and releases the rest in the same script, and its ledger entry names
the unit, quantity and rate it was priced by (:class:`Pricing`). Grants and debits move the
balance directly. Every change is one Lua script that checks and writes together and appends
its ledger entry (a Redis Stream per tenant) in the same step, so ``0 <= reserved <= balance``
holds whatever the concurrency: the balance never goes negative. A hold is settled once; a
settled hold is remembered for ``store.jobs.SETTLED_HOLD_TTL_S`` so late duplicates stay
no-ops. The holds' rules live in ``lua/lib/credits.lua``.

The ledger reconciles with the account at any time::

    balance  = Σ grant - Σ debit - Σ charge
    reserved = Σ reserve + Σ adjust - Σ charge - Σ release

(``adjust`` amounts are signed: the change of the hold; all others are non-negative.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from app.store import keys
from app.store.scripts import Scripts

_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
"""A cursor, matched whole (``fullmatch``): ``$`` would let a trailing newline through to
Redis, which refuses the id."""
_SCAN_BATCH = 200
_SCAN_MAX = 10_000
"""A filtered listing reads at most this many entries per page, then hands back a cursor."""
MAX_BALANCE = 10**15
"""The largest balance a grant may make: exact in Lua's numbers (doubles, exact to 2**53) and
far from Redis's 64-bit integers."""


class LedgerKind(StrEnum):
    grant = "grant"
    """Credits added to the balance (admin top-up, sandbox seed)."""
    debit = "debit"
    """Credits taken off the balance outside any job (admin correction)."""
    reserve = "reserve"
    """A job's hold was created: ``reserved`` grew by ``amount``."""
    adjust = "adjust"
    """A job's hold moved by ``amount`` (signed), e.g. on fallback to another provider."""
    charge = "charge"
    """A job was billed ``amount`` out of its hold: balance and reserved both shrank."""
    release = "release"
    """(The rest of) a job's hold was let go without billing."""


class HoldState(StrEnum):
    held = "held"
    """Open: the credits are reserved for the job."""
    charged = "charged"
    """Settled by a charge."""
    released = "released"
    """Settled by a release."""


@dataclass(frozen=True)
class Pricing:
    """How a priced amount was reached: ``quantity`` ``unit`` at ``rate`` credits each.

    Written on the ledger entries that reserve, adjust and charge a job's credits. The values
    are decimal strings as the price rule renders them (``rate`` may be a fraction, ``1/3``).
    """

    unit: str
    quantity: str
    rate: str

    def args(self) -> list[str]:
        return [self.unit, self.quantity, self.rate]


NOT_PRICED = ["", "", ""]


def pricing_args(pricing: Pricing | None) -> list[str]:
    return pricing.args() if pricing is not None else list(NOT_PRICED)


@dataclass(frozen=True)
class CreditAccount:
    """A tenant's credits: the ``balance``, the part ``reserved`` by holds, what is left."""

    balance: int
    reserved: int
    available: int

    @classmethod
    def of(cls, balance: int, reserved: int) -> CreditAccount:
        return cls(balance, reserved, balance - reserved)


@dataclass(frozen=True)
class Hold:
    """A job's hold on its tenant's credits, and the account after it moved."""

    job_id: str
    amount: int
    state: HoldState
    account: CreditAccount


@dataclass(frozen=True)
class Shortfall:
    """Not enough credits: ``required`` for the hold, ``available`` to back it."""

    required: int
    available: int


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    """The stream entry id; also the cursor that continues a listing after this entry."""
    kind: LedgerKind
    amount: int
    job_id: str | None
    reason: str | None
    balance_after: int
    reserved_after: int
    at: datetime
    pricing: Pricing | None = None
    """Unit, quantity and rate of a priced reserve, adjust or charge."""


class CreditsShort(Exception):
    """A debit would take the available credits below zero."""

    def __init__(self, required: int, available: int) -> None:
        super().__init__(f"required {required} credits, available {available}")
        self.required = required
        self.available = available


class BalanceTooLarge(ValueError):
    """A grant would take the balance over :data:`MAX_BALANCE`."""


class HoldNotOpen(Exception):
    """The job has no open hold to adjust (none was made, or it is already settled)."""

    def __init__(self, job_id: str, state: HoldState | None) -> None:
        super().__init__(f"job {job_id} has no open hold ({state or 'none'})")
        self.job_id = job_id
        self.state = state


class CreditLedger:
    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts

    async def grant(self, tenant_id: str, amount: int, reason: str) -> CreditAccount:
        _require(amount > 0, "a grant must be positive")
        _require(amount <= MAX_BALANCE, f"a grant may be at most {MAX_BALANCE}")
        balance, reserved, done = await self.scripts.grant_credits(
            keys=[keys.credit_account(tenant_id), keys.credit_ledger(tenant_id)],
            args=[amount, reason, MAX_BALANCE],
        )
        if not int(done):
            raise BalanceTooLarge(f"the balance may be at most {MAX_BALANCE} credits")
        return CreditAccount.of(int(balance), int(reserved))

    async def debit(self, tenant_id: str, amount: int, reason: str) -> CreditAccount:
        """Take credits off the balance; raises :class:`CreditsShort` if not available."""
        _require(amount > 0, "a debit must be positive")
        ok, balance, reserved = await self.scripts.debit_credits(
            keys=[keys.credit_account(tenant_id), keys.credit_ledger(tenant_id)],
            args=[amount, reason],
        )
        account = CreditAccount.of(int(balance), int(reserved))
        if not int(ok):
            raise CreditsShort(amount, account.available)
        return account

    async def adjust(
        self,
        tenant_id: str,
        job_id: str,
        new_amount: int,
        *,
        reason: str = "",
        pricing: Pricing | None = None,
    ) -> Hold | Shortfall:
        """Move the job's open hold to ``new_amount``. When the increase is not available the
        old hold stays as it was and a :class:`Shortfall` says what the hold would need
        (``required = new_amount``) against what could back it (available + the old hold).
        Raises :class:`HoldNotOpen` when the job has no open hold."""
        _require(new_amount >= 0, "a reservation cannot be negative")
        row = await self.scripts.adjust_credits(
            keys=[
                keys.credit_account(tenant_id),
                keys.credit_hold(tenant_id, job_id),
                keys.credit_ledger(tenant_id),
            ],
            args=[new_amount, job_id, reason, *pricing_args(pricing)],
        )
        if int(row[0]) == -1:
            raise HoldNotOpen(job_id, HoldState(row[2]) if row[2] else None)
        if int(row[0]) == 0:
            old = int(row[1])
            return Shortfall(new_amount, CreditAccount.of(int(row[3]), int(row[4])).available + old)
        return _hold(job_id, row)

    async def account(self, tenant_id: str) -> CreditAccount:
        balance, reserved = await self.redis.hmget(
            keys.credit_account(tenant_id), "balance", "reserved"
        )
        return CreditAccount.of(int(balance or 0), int(reserved or 0))

    async def open_holds(self, tenant_id: str) -> dict[str, int]:
        """Job id → credits held, for every open hold (they sum to ``reserved``)."""
        job_ids = sorted(str(j) for j in await self.redis.smembers(keys.credit_holds(tenant_id)))
        if not job_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(keys.credit_hold(tenant_id, job_id), "amount")
            amounts = await pipe.execute()
        return {j: int(a) for j, a in zip(job_ids, amounts, strict=True) if a is not None}

    async def entries(
        self,
        tenant_id: str,
        *,
        cursor: str | None,
        limit: int,
        kind: str | None = None,
        job_id: str | None = None,
    ) -> tuple[list[LedgerEntry], str | None]:
        """Ledger entries, newest first, strictly older than ``cursor`` (an entry id), and the
        cursor of the next page (``None`` at the end). With a filter, a page may come back
        short (even empty) with a cursor after reading ``_SCAN_MAX`` entries; keep following
        the cursor. Raises ``ValueError`` on a malformed cursor or unknown kind."""
        _require(limit > 0, "limit must be positive")
        _require(cursor is None or _is_entry_id(cursor), "malformed cursor")
        if cursor is not None and not any(int(part) for part in cursor.split("-")):
            return [], None  # nothing is older than the first possible id
        wanted = LedgerKind(kind) if kind is not None else None
        filtered = wanted is not None or job_id is not None
        batch = _SCAN_BATCH if filtered else limit + 1
        stream = keys.credit_ledger(tenant_id)
        found: list[LedgerEntry] = []
        upper = "+" if cursor is None else f"({cursor}"
        scanned = 0
        while True:
            rows = await self.redis.xrevrange(stream, max=upper, min="-", count=batch) or []
            for entry_id, fields in rows:
                entry = _entry(str(entry_id), {str(k): str(v) for k, v in (fields or {}).items()})
                if (wanted is None or entry.kind is wanted) and (
                    job_id is None or entry.job_id == job_id
                ):
                    if len(found) == limit:
                        return found, found[-1].id
                    found.append(entry)
            scanned += len(rows)
            if len(rows) < batch:
                return found, None
            last = str(rows[-1][0])
            upper = f"({last}"
            if scanned >= _SCAN_MAX:
                return found, last


def _is_entry_id(cursor: str) -> bool:
    """A Redis stream id: two decimal numbers each within 64 bits."""
    if not _STREAM_ID.fullmatch(cursor):
        return False
    return all(int(part) < 2**64 for part in cursor.split("-"))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _hold(job_id: str, row: list[Any]) -> Hold | Shortfall:
    ok, amount, state, balance, reserved = row
    account = CreditAccount.of(int(balance), int(reserved))
    if not int(ok):
        return Shortfall(int(amount), account.available)
    return Hold(job_id, int(amount), HoldState(state), account)


def _entry(entry_id: str, fields: dict[str, str]) -> LedgerEntry:
    return LedgerEntry(
        id=entry_id,
        kind=LedgerKind(fields["kind"]),
        amount=int(fields["amount"]),
        job_id=fields.get("job_id") or None,
        reason=fields.get("reason") or None,
        balance_after=int(fields["balance_after"]),
        reserved_after=int(fields["reserved_after"]),
        at=datetime.fromtimestamp(int(fields["at"]) / 1000, tz=UTC),
        pricing=Pricing(fields["unit"], fields["quantity"], fields["rate"])
        if fields.get("unit")
        else None,
    )
