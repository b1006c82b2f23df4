"""The credit ledger against a real Redis: holds under concurrency, settlement, the ledger.

Holds are taken and settled on the path jobs take: a job's creation holds its price
(``JobStore.create``, ``create_job.lua``) and its terminal save charges or releases it
(``JobStore.save``, ``save_job.lua``)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from app.domain.models import JobStatus
from app.store import credits, keys
from app.store.credits import (
    CreditAccount,
    CreditLedger,
    CreditsShort,
    Hold,
    HoldNotOpen,
    HoldState,
    LedgerEntry,
    LedgerKind,
    Shortfall,
)
from app.store.jobs import (
    Charge,
    JobExists,
    JobSlotsFull,
    JobStore,
    SaveRefused,
    Schedule,
    Settle,
    Stored,
)
from app.store.scripts import Scripts
from tests.store.test_jobs import make_record

TENANT = "t1"
REASON = "image.remove_background"
"""What a job's reserve entry gives as its reason (the operation of ``make_record``)."""


@pytest.fixture
def ledger(redis_client: Redis) -> CreditLedger:
    return CreditLedger(redis_client, Scripts.register(redis_client))


@pytest.fixture
def store(redis_client: Redis) -> JobStore:
    return JobStore(redis_client, Scripts.register(redis_client), retention_s=3600)


@pytest.fixture
def ledgers(separate_clients: list[Redis]) -> list[CreditLedger]:
    """Five ledgers on separate connection pools, as five processes would be."""
    return [CreditLedger(c, Scripts.register(c)) for c in separate_clients]


@pytest.fixture
def stores(separate_clients: list[Redis]) -> list[JobStore]:
    """Five job stores on separate connection pools, as five processes would be."""
    return [JobStore(c, Scripts.register(c), retention_s=3600) for c in separate_clients]


async def hold(store: JobStore, job_id: str, amount: int) -> Stored | Shortfall | JobExists:
    """Create the job ``job_id`` holding ``amount`` credits, or report why not."""
    record = make_record(TENANT)
    record.job.id = job_id
    created = await store.create(record, price=amount, slot_limit=10_000)
    assert not isinstance(created, JobSlotsFull)
    return created


async def held(store: JobStore, job_id: str, amount: int) -> Stored:
    created = await hold(store, job_id, amount)
    assert isinstance(created, Stored)
    return created


def copy(stored: Stored) -> Stored:
    """The job as another process read it, at the same version."""
    return Stored(stored.record.model_copy(deep=True), stored.version, stored.lease)


async def charge(store: JobStore, stored: Stored, amount: int | None = None) -> int:
    """End the job succeeded, billing ``amount`` (default: the hold); the credits charged."""
    stored.record.job.status = JobStatus.succeeded
    saved = await store.save(
        stored,
        schedule=Schedule.release,
        settle=Settle.charge,
        charge=None if amount is None else Charge(amount),
    )
    return saved.record.job.credits.charged


async def release(store: JobStore, stored: Stored) -> None:
    """End the job failed, letting its hold go."""
    stored.record.job.status = JobStatus.failed
    await store.save(stored, schedule=Schedule.release, settle=Settle.release)


async def all_entries(ledger: CreditLedger, tenant: str = TENANT) -> list[LedgerEntry]:
    entries, cursor = await ledger.entries(tenant, cursor=None, limit=100)
    while cursor is not None:
        page, cursor = await ledger.entries(tenant, cursor=cursor, limit=100)
        entries += page
    return entries


async def assert_reconciles(ledger: CreditLedger, tenant: str = TENANT) -> CreditAccount:
    """The account equals the sums over its ledger, and ``reserved`` the sum of open holds."""
    account = await ledger.account(tenant)
    total: dict[LedgerKind, int] = {kind: 0 for kind in LedgerKind}
    for entry in await all_entries(ledger, tenant):
        total[entry.kind] += entry.amount
    granted, debited, charged = (
        total[LedgerKind.grant],
        total[LedgerKind.debit],
        total[LedgerKind.charge],
    )
    assert account.balance == granted - debited - charged
    reserved, adjusted, released = (
        total[k] for k in (LedgerKind.reserve, LedgerKind.adjust, LedgerKind.release)
    )
    assert account.reserved == reserved + adjusted - charged - released
    assert account.reserved == sum((await ledger.open_holds(tenant)).values())
    assert 0 <= account.reserved <= account.balance
    return account


async def test_concurrent_reserves_never_overspend(
    ledgers: list[CreditLedger], stores: list[JobStore]
) -> None:
    first = ledgers[0]
    await first.grant(TENANT, 100, "top-up")
    results = await asyncio.gather(
        *(hold(stores[i % len(stores)], f"job-{i}", 1) for i in range(500))
    )
    holding = [r for r in results if isinstance(r, Stored)]
    short = [r for r in results if isinstance(r, Shortfall)]
    assert len(holding) == 100 and len(short) == 400
    assert all(s == Shortfall(required=1, available=0) for s in short)
    assert await first.account(TENANT) == CreditAccount(100, 100, 0)

    charged = await asyncio.gather(
        *(charge(stores[i % len(stores)], s) for i, s in enumerate(holding))
    )
    assert sum(charged) == 100
    assert await first.account(TENANT) == CreditAccount(0, 0, 0)
    entries = await all_entries(first)
    assert len(entries) == 1 + 100 + 100
    grants = sum(e.amount for e in entries if e.kind is LedgerKind.grant)
    charges = sum(e.amount for e in entries if e.kind is LedgerKind.charge)
    assert grants - charges == 0 == (await first.account(TENANT)).balance
    await assert_reconciles(first)


async def test_concurrent_debits_and_reserves_keep_balance_non_negative(
    ledgers: list[CreditLedger], stores: list[JobStore]
) -> None:
    await ledgers[0].grant(TENANT, 50, "top-up")

    async def debit(ledger: CreditLedger) -> int:
        try:
            await ledger.debit(TENANT, 3, "correction")
        except CreditsShort:
            return 0
        return 3

    async def reserve(store: JobStore, job_id: str) -> int:
        return 2 if isinstance(await hold(store, job_id, 2), Stored) else 0

    spent = await asyncio.gather(
        *(debit(ledgers[i % 5]) for i in range(40)),
        *(reserve(stores[i % 5], f"job-{i}") for i in range(40)),
    )
    account = await assert_reconciles(ledgers[0])
    assert sum(spent) + account.available == 50
    assert account.available < 2


async def test_a_job_holds_once(ledger: CreditLedger, store: JobStore, redis_client: Redis) -> None:
    """Creating a job again is refused and holds nothing more, before and after it settles."""
    await ledger.grant(TENANT, 10, "top-up")
    first = await held(store, "job-1", 4)
    assert await hold(store, "job-1", 7) == JobExists()
    assert await ledger.account(TENANT) == CreditAccount(10, 4, 6)
    reserves = [e for e in await all_entries(ledger) if e.kind is LedgerKind.reserve]
    assert [e.amount for e in reserves] == [4]
    await charge(store, first)
    assert await hold(store, "job-1", 4) == JobExists()
    hold_state = await redis_client.hget(keys.credit_hold(TENANT, "job-1"), "state")
    assert hold_state == HoldState.charged.value
    assert await ledger.account(TENANT) == CreditAccount(6, 0, 6)


async def test_charge_and_release_settle_once(ledger: CreditLedger, store: JobStore) -> None:
    await ledger.grant(TENANT, 20, "top-up")
    ok = await held(store, "ok", 5)
    failed = await held(store, "failed", 7)
    ok_late, failed_late = copy(ok), copy(failed)
    assert await charge(store, ok) == 5
    with pytest.raises(SaveRefused):
        await charge(store, copy(ok_late))
    with pytest.raises(SaveRefused):
        await release(store, copy(ok_late))
    await release(store, failed)
    with pytest.raises(SaveRefused):
        await release(store, copy(failed_late))
    with pytest.raises(SaveRefused):
        await charge(store, copy(failed_late))
    never = Stored(make_record(TENANT), 1)
    with pytest.raises(SaveRefused, match="missing"):
        await charge(store, never)
    settled = [(e.job_id, e.kind, e.amount) for e in await all_entries(ledger)][:2]
    assert settled == [("failed", LedgerKind.release, 7), ("ok", LedgerKind.charge, 5)]
    assert await ledger.account(TENANT) == CreditAccount(15, 0, 15)
    await assert_reconciles(ledger)


async def test_charge_of_a_part_releases_the_rest_and_never_exceeds_the_hold(
    ledger: CreditLedger, store: JobStore
) -> None:
    await ledger.grant(TENANT, 20, "top-up")
    cheap = await held(store, "cheap", 8)
    greedy = await held(store, "greedy", 4)
    assert await charge(store, cheap, 3) == 3
    assert await charge(store, greedy, 9) == 4
    assert await ledger.account(TENANT) == CreditAccount(13, 0, 13)
    newest = (await ledger.entries(TENANT, cursor=None, limit=10, job_id="cheap"))[0]
    assert [(e.kind, e.amount) for e in newest] == [
        (LedgerKind.release, 5),
        (LedgerKind.charge, 3),
        (LedgerKind.reserve, 8),
    ]
    assert newest[1].reason == f"{REASON} succeeded"
    await assert_reconciles(ledger)


async def test_concurrent_duplicate_settlements_settle_once(
    ledgers: list[CreditLedger], stores: list[JobStore]
) -> None:
    await ledgers[0].grant(TENANT, 10, "top-up")
    stored = await held(stores[0], "job", 6)

    async def settle(i: int) -> bool:
        store = stores[i % 5]
        try:
            await (charge(store, copy(stored)) if i % 2 else release(store, copy(stored)))
        except SaveRefused:
            return False
        return True

    won = await asyncio.gather(*(settle(i) for i in range(20)))
    assert won.count(True) == 1
    account = await assert_reconciles(ledgers[0])
    assert account.reserved == 0 and account.balance in (4, 10)
    moves = [(e.kind, e.amount) for e in await all_entries(ledgers[0]) if e.job_id == "job"]
    assert moves[0] in ((LedgerKind.charge, 6), (LedgerKind.release, 6))
    assert moves[1:] == [(LedgerKind.reserve, 6)]


async def test_adjust_moves_the_hold_or_leaves_it_intact(
    ledger: CreditLedger, store: JobStore
) -> None:
    await ledger.grant(TENANT, 10, "top-up")
    job = await held(store, "job", 4)
    await held(store, "other", 3)
    up = await ledger.adjust(TENANT, "job", 6, reason="fallback to pixelapi")
    assert isinstance(up, Hold) and up.amount == 6
    assert up.account == CreditAccount(10, 9, 1)
    too_much = await ledger.adjust(TENANT, "job", 8)
    assert too_much == Shortfall(required=8, available=7)
    assert await ledger.account(TENANT) == CreditAccount(10, 9, 1)
    assert (await ledger.open_holds(TENANT))["job"] == 6
    down = await ledger.adjust(TENANT, "job", 2)
    assert isinstance(down, Hold) and down.account == CreditAccount(10, 5, 5)
    adjusts = [e.amount for e in await all_entries(ledger) if e.kind is LedgerKind.adjust]
    assert adjusts == [-4, 2]
    assert await charge(store, job) == 2
    with pytest.raises(HoldNotOpen) as refused:
        await ledger.adjust(TENANT, "job", 3)
    assert refused.value.state is HoldState.charged
    with pytest.raises(HoldNotOpen):
        await ledger.adjust(TENANT, "never-reserved", 3)
    await assert_reconciles(ledger)


async def test_debit_refuses_beyond_available(ledger: CreditLedger, store: JobStore) -> None:
    await ledger.grant(TENANT, 10, "top-up")
    await held(store, "job", 6)
    with pytest.raises(CreditsShort) as refused:
        await ledger.debit(TENANT, 5, "correction")
    assert (refused.value.required, refused.value.available) == (5, 4)
    assert await ledger.debit(TENANT, 4, "correction") == CreditAccount(6, 6, 0)
    with pytest.raises(ValueError):
        await ledger.grant(TENANT, 0, "nothing")
    with pytest.raises(CreditsShort):
        await ledger.debit("unknown-tenant", 1, "correction")
    await assert_reconciles(ledger)


async def test_entries_paginate_newest_first_with_filters(
    ledger: CreditLedger, store: JobStore
) -> None:
    await ledger.grant(TENANT, 100, "first")
    for i in range(12):
        job = await held(store, f"job-{i}", 1)
        if i % 2:
            await charge(store, job)
    await ledger.grant(TENANT, 5, "second")
    await ledger.grant("t2", 7, "elsewhere")

    everything = await all_entries(ledger)
    assert len(everything) == 2 + 12 + 6
    positions = [tuple(int(part) for part in e.id.split("-")) for e in everything]
    assert positions == sorted(positions, reverse=True)
    assert everything[0].kind is LedgerKind.grant and everything[0].reason == "second"
    assert everything[0].balance_after == 99 and everything[0].reserved_after == 6
    assert everything[-1].reason == "first" and everything[-1].job_id is None

    page1, cursor = await ledger.entries(TENANT, cursor=None, limit=7)
    page2, cursor2 = await ledger.entries(TENANT, cursor=cursor, limit=7)
    page3, cursor3 = await ledger.entries(TENANT, cursor=cursor2, limit=7)
    assert (len(page1), len(page2), len(page3), cursor3) == (7, 7, 6, None)
    assert page1 + page2 + page3 == everything

    charges, cursor = await ledger.entries(TENANT, cursor=None, limit=4, kind="charge")
    rest, end = await ledger.entries(TENANT, cursor=cursor, limit=4, kind="charge")
    assert end is None
    assert [e.job_id for e in charges + rest] == [f"job-{i}" for i in (11, 9, 7, 5, 3, 1)]
    assert all(e.kind is LedgerKind.charge and e.amount == 1 for e in charges + rest)

    one_job, end = await ledger.entries(TENANT, cursor=None, limit=10, job_id="job-3")
    assert [e.kind for e in one_job] == [LedgerKind.charge, LedgerKind.reserve] and end is None
    assert one_job[1].reason == REASON
    with pytest.raises(ValueError):
        await ledger.entries(TENANT, cursor="not-an-id", limit=5)
    with pytest.raises(ValueError):
        await ledger.entries(TENANT, cursor=None, limit=5, kind="bogus")


@pytest.mark.parametrize("cursor", ["1-1\n", "\n1-1", "1-1 "])
async def test_a_cursor_is_the_whole_string_or_refused(ledger: CreditLedger, cursor: str) -> None:
    """A cursor with anything around its two numbers (a trailing newline slipped past ``$``)
    is refused here, as malformed, not handed to Redis to fail there."""
    await ledger.grant(TENANT, 1, "top-up")
    with pytest.raises(ValueError, match="malformed cursor"):
        await ledger.entries(TENANT, cursor=cursor, limit=5)


async def test_keys_of_a_tenant_share_a_hash_slot(
    ledger: CreditLedger, store: JobStore, redis_client: Redis
) -> None:
    await ledger.grant(TENANT, 3, "top-up")
    await charge(store, await held(store, "job", 2))
    names = [str(k) async for k in redis_client.scan_iter(match="mg:credits:*")]
    assert sorted(names) == sorted(
        [keys.credit_account(TENANT), keys.credit_hold(TENANT, "job"), keys.credit_ledger(TENANT)]
    )
    assert all("{t1}" in name for name in names)
    assert 0 < await redis_client.ttl(keys.credit_hold(TENANT, "job")) <= 7 * 86400


async def test_filtered_listing_reads_a_bounded_slice_per_page(
    ledger: CreditLedger, store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credits, "_SCAN_BATCH", 4)
    monkeypatch.setattr(credits, "_SCAN_MAX", 8)
    await ledger.grant(TENANT, 100, "top-up")
    first = await held(store, "job-0", 1)
    for i in range(1, 30):
        await held(store, f"job-{i}", 1)
    await release(store, first)
    pages = 0
    found: list[LedgerEntry] = []
    cursor: str | None = None
    while True:
        page, cursor = await ledger.entries(TENANT, cursor=cursor, limit=5, kind="grant")
        found += page
        pages += 1
        if cursor is None:
            break
    assert [e.reason for e in found] == ["top-up"]
    assert pages == 5  # 32 entries, 8 read per page, then an empty read finds the end
    (released,), end = await ledger.entries(TENANT, cursor=None, limit=5, job_id="job-0")
    assert released.kind is LedgerKind.release and end is not None
