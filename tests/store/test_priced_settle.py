"""Settling a priced job in its terminal save, on a real Redis: the actual amount is charged,
the rest refunded, the ledger entry names unit, quantity and rate, and the spend record is
appended once — concurrently, and never twice."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from app.domain.models import JobStatus
from app.store import keys
from app.store.credits import CreditLedger, HoldState, LedgerKind, Pricing
from app.store.jobs import Charge, JobStore, SaveRefused, Schedule, Settle, Stored
from app.store.scripts import Scripts
from app.store.spend import SpendLog
from tests.store.test_credits import all_entries, assert_reconciles
from tests.store.test_jobs import make_record

TENANT = "t1"
RESERVED = Pricing("1k_chars", "10", "4")
ACTUAL = Pricing("1k_chars", "2.5", "4")


@pytest.fixture
def scripts(redis_client: Redis) -> Scripts:
    return Scripts.register(redis_client)


@pytest.fixture
def store(redis_client: Redis, scripts: Scripts) -> JobStore:
    return JobStore(redis_client, scripts, retention_s=3600)


@pytest.fixture
def ledger(redis_client: Redis, scripts: Scripts) -> CreditLedger:
    return CreditLedger(redis_client, scripts)


async def _created(store: JobStore, price: int = 40) -> Stored:
    created = await store.create(
        make_record(TENANT), price=price, slot_limit=1000, pricing=RESERVED
    )
    assert isinstance(created, Stored)
    return created


async def _finish(store: JobStore, stored: Stored, amount: int, spend: str = "{}") -> Stored:
    stored.record.job.status = JobStatus.succeeded
    return await store.save(
        stored,
        schedule=Schedule.release,
        settle=Settle.charge,
        charge=Charge(amount, ACTUAL),
        spend=spend,
    )


async def test_terminal_save_charges_the_actual_amount_and_refunds_the_rest(
    store: JobStore, ledger: CreditLedger, redis_client: Redis
) -> None:
    await ledger.grant(TENANT, 100, "seed")
    stored = await _created(store)
    assert (await ledger.account(TENANT)).reserved == 40
    saved = await _finish(store, stored, 10, spend='{"job": 1}')
    assert saved.record.job.credits.charged == 10
    account = await assert_reconciles(ledger)
    assert (account.balance, account.reserved) == (90, 0)
    job_id = stored.record.job.id
    entries = [e for e in await all_entries(ledger) if e.job_id == job_id]
    by_kind = {e.kind: e for e in entries}
    assert by_kind[LedgerKind.reserve].amount == 40
    assert by_kind[LedgerKind.reserve].pricing == RESERVED
    assert by_kind[LedgerKind.charge].amount == 10
    assert by_kind[LedgerKind.charge].pricing == ACTUAL
    assert by_kind[LedgerKind.release].amount == 30
    assert by_kind[LedgerKind.release].pricing is None
    (spent,) = await SpendLog(redis_client).read(0, None, limit=10)
    assert (spent.job_id, spent.charged, spent.record) == (job_id, 10, '{"job": 1}')
    hold = await redis_client.hgetall(keys.credit_hold(TENANT, job_id))
    assert (hold["state"], hold["charged"]) == (HoldState.charged.value, "10")


async def test_a_charge_above_the_hold_bills_the_hold(
    store: JobStore, ledger: CreditLedger
) -> None:
    await ledger.grant(TENANT, 100, "seed")
    stored = await _created(store, price=40)
    await _finish(store, stored, 55)
    account = await assert_reconciles(ledger)
    assert (account.balance, account.reserved) == (60, 0)


async def test_a_second_terminal_save_is_refused_and_settles_nothing(
    store: JobStore, ledger: CreditLedger, redis_client: Redis
) -> None:
    await ledger.grant(TENANT, 100, "seed")
    stored = await _created(store)
    again = Stored(stored.record.model_copy(deep=True), stored.version, stored.lease)
    await _finish(store, stored, 10)
    with pytest.raises(SaveRefused):
        await _finish(store, again, 40)
    again.record.job.status = JobStatus.failed
    with pytest.raises(SaveRefused):
        await store.save(again, schedule=Schedule.release, settle=Settle.release)
    account = await assert_reconciles(ledger)
    assert (account.balance, account.reserved) == (90, 0)
    assert len(await SpendLog(redis_client).read(0, None, limit=10)) == 1


async def test_concurrent_settles_of_one_job_charge_once(
    separate_clients: list[Redis], ledger: CreditLedger, store: JobStore, redis_client: Redis
) -> None:
    """Five processes race to save the same job terminal: one wins, one charge, one record."""
    await ledger.grant(TENANT, 100, "seed")
    stored = await _created(store)
    stores = [JobStore(c, Scripts.register(c), retention_s=3600) for c in separate_clients]

    async def finish(i: int, s: JobStore) -> int | None:
        mine = Stored(stored.record.model_copy(deep=True), stored.version, stored.lease)
        try:
            saved = await _finish(s, mine, 10 + i)
        except SaveRefused:
            return None
        return saved.record.job.credits.charged

    results = await asyncio.gather(*(finish(i, s) for i, s in enumerate(stores)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    account = await assert_reconciles(ledger)
    assert account.balance == 100 - winners[0] and account.reserved == 0
    charges = [e for e in await all_entries(ledger) if e.kind is LedgerKind.charge]
    assert [c.amount for c in charges] == winners
    assert len(await SpendLog(redis_client).read(0, None, limit=10)) == 1


async def test_concurrent_settles_of_many_jobs_keep_the_ledger_balanced(
    separate_clients: list[Redis], ledger: CreditLedger, store: JobStore
) -> None:
    """Sixty jobs of one tenant settle at once from five connections, each at its own amount."""
    await ledger.grant(TENANT, 60 * 40, "seed")
    created = [await _created(store) for _ in range(60)]
    stores = [JobStore(c, Scripts.register(c), retention_s=3600) for c in separate_clients]
    amounts = [i % 41 for i in range(60)]
    await asyncio.gather(
        *(_finish(stores[i % len(stores)], s, amounts[i]) for i, s in enumerate(created))
    )
    account = await assert_reconciles(ledger)
    assert account.reserved == 0
    assert account.balance == 60 * 40 - sum(amounts)
    assert await ledger.open_holds(TENANT) == {}
