"""The credit ledger against a real Redis: holds under concurrency, settlement, the ledger."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from app.store import credits, keys
from app.store.credits import (
    Balance,
    CreditLedger,
    CreditsShort,
    HoldNotOpen,
    HoldState,
    LedgerEntry,
    LedgerKind,
    Reservation,
    Shortfall,
)
from app.store.scripts import Scripts

TENANT = "t1"


@pytest.fixture
def ledger(redis_client: Redis) -> CreditLedger:
    return CreditLedger(redis_client, Scripts.register(redis_client))


@pytest.fixture
def ledgers(separate_clients: list[Redis]) -> list[CreditLedger]:
    """Five ledgers on separate connection pools, as five processes would be."""
    return [CreditLedger(c, Scripts.register(c)) for c in separate_clients]


async def all_entries(ledger: CreditLedger, tenant: str = TENANT) -> list[LedgerEntry]:
    entries, cursor = await ledger.entries(tenant, cursor=None, limit=100)
    while cursor is not None:
        page, cursor = await ledger.entries(tenant, cursor=cursor, limit=100)
        entries += page
    return entries


async def assert_reconciles(ledger: CreditLedger, tenant: str = TENANT) -> Balance:
    """The account equals the sums over its ledger, and ``reserved`` the sum of open holds."""
    account = await ledger.balance(tenant)
    total: dict[LedgerKind, int] = {kind: 0 for kind in LedgerKind}
    for entry in await all_entries(ledger, tenant):
        total[entry.kind] += entry.amount
    grant, debit, charge = (
        total[LedgerKind.grant],
        total[LedgerKind.debit],
        total[LedgerKind.charge],
    )
    assert account.balance == grant - debit - charge
    reserve, adjust, release = (
        total[k] for k in (LedgerKind.reserve, LedgerKind.adjust, LedgerKind.release)
    )
    assert account.reserved == reserve + adjust - charge - release
    assert account.reserved == sum((await ledger.open_holds(tenant)).values())
    assert 0 <= account.reserved <= account.balance
    return account


async def test_concurrent_reserves_never_overspend(ledgers: list[CreditLedger]) -> None:
    first = ledgers[0]
    await first.grant(TENANT, 100, "top-up")
    results = await asyncio.gather(
        *(ledgers[i % len(ledgers)].reserve(TENANT, f"job-{i}", 1) for i in range(500))
    )
    held = [r for r in results if isinstance(r, Reservation)]
    short = [r for r in results if isinstance(r, Shortfall)]
    assert len(held) == 100 and len(short) == 400
    assert all(s == Shortfall(required=1, available=0) for s in short)
    assert await first.balance(TENANT) == Balance(100, 100, 0)

    charged = await asyncio.gather(
        *(ledgers[i % len(ledgers)].charge(TENANT, r.job_id) for i, r in enumerate(held))
    )
    assert sum(charged) == 100
    assert await first.balance(TENANT) == Balance(0, 0, 0)
    entries = await all_entries(first)
    assert len(entries) == 1 + 100 + 100
    grants = sum(e.amount for e in entries if e.kind is LedgerKind.grant)
    charges = sum(e.amount for e in entries if e.kind is LedgerKind.charge)
    assert grants - charges == 0 == (await first.balance(TENANT)).balance
    await assert_reconciles(first)


async def test_concurrent_debits_and_reserves_keep_balance_non_negative(
    ledgers: list[CreditLedger],
) -> None:
    await ledgers[0].grant(TENANT, 50, "top-up")

    async def debit(ledger: CreditLedger) -> int:
        try:
            await ledger.debit(TENANT, 3, "correction")
        except CreditsShort:
            return 0
        return 3

    async def reserve(ledger: CreditLedger, job_id: str) -> int:
        held = await ledger.reserve(TENANT, job_id, 2)
        return held.amount if isinstance(held, Reservation) else 0

    spent = await asyncio.gather(
        *(debit(ledgers[i % 5]) for i in range(40)),
        *(reserve(ledgers[i % 5], f"job-{i}") for i in range(40)),
    )
    account = await assert_reconciles(ledgers[0])
    assert sum(spent) + account.available == 50
    assert account.available < 2


async def test_reserve_is_idempotent_per_job(ledger: CreditLedger) -> None:
    await ledger.grant(TENANT, 10, "top-up")
    first = await ledger.reserve(TENANT, "job-1", 4)
    again = await ledger.reserve(TENANT, "job-1", 7)
    assert isinstance(first, Reservation) and isinstance(again, Reservation)
    assert first.amount == again.amount == 4 and again.state is HoldState.held
    assert again.account == Balance(10, 4, 6)
    reserves = [e for e in await all_entries(ledger) if e.kind is LedgerKind.reserve]
    assert len(reserves) == 1
    await ledger.charge(TENANT, "job-1")
    settled = await ledger.reserve(TENANT, "job-1", 4)
    assert isinstance(settled, Reservation) and settled.state is HoldState.charged
    assert await ledger.balance(TENANT) == Balance(6, 0, 6)


async def test_charge_and_release_settle_once(ledger: CreditLedger) -> None:
    await ledger.grant(TENANT, 20, "top-up")
    await ledger.reserve(TENANT, "ok", 5)
    await ledger.reserve(TENANT, "failed", 7)
    assert await ledger.charge(TENANT, "ok") == 5
    assert await ledger.charge(TENANT, "ok") == 0
    assert await ledger.release(TENANT, "ok") == 0
    assert await ledger.release(TENANT, "failed") == 7
    assert await ledger.release(TENANT, "failed") == 0
    assert await ledger.charge(TENANT, "failed") == 0
    assert await ledger.charge(TENANT, "never-reserved") == 0
    assert await ledger.balance(TENANT) == Balance(15, 0, 15)
    await assert_reconciles(ledger)


async def test_charge_of_a_part_releases_the_rest_and_never_exceeds_the_hold(
    ledger: CreditLedger,
) -> None:
    await ledger.grant(TENANT, 20, "top-up")
    await ledger.reserve(TENANT, "cheap", 8)
    await ledger.reserve(TENANT, "greedy", 4)
    assert await ledger.charge(TENANT, "cheap", 3, reason="upstream billed 3") == 3
    assert await ledger.charge(TENANT, "greedy", 9) == 4
    assert await ledger.balance(TENANT) == Balance(13, 0, 13)
    newest = (await ledger.entries(TENANT, cursor=None, limit=10, job_id="cheap"))[0]
    assert [(e.kind, e.amount) for e in newest] == [
        (LedgerKind.release, 5),
        (LedgerKind.charge, 3),
        (LedgerKind.reserve, 8),
    ]
    assert newest[1].reason == "upstream billed 3"
    await assert_reconciles(ledger)


async def test_concurrent_duplicate_settlements_settle_once(ledgers: list[CreditLedger]) -> None:
    await ledgers[0].grant(TENANT, 10, "top-up")
    await ledgers[0].reserve(TENANT, "job", 6)
    settled = await asyncio.gather(
        *(ledgers[i % 5].charge(TENANT, "job") for i in range(10)),
        *(ledgers[i % 5].release(TENANT, "job") for i in range(10)),
    )
    assert sorted(settled)[-1] == 6 and sum(settled) == 6
    account = await assert_reconciles(ledgers[0])
    assert account.reserved == 0 and account.balance in (4, 10)


async def test_adjust_moves_the_hold_or_leaves_it_intact(ledger: CreditLedger) -> None:
    await ledger.grant(TENANT, 10, "top-up")
    await ledger.reserve(TENANT, "job", 4)
    await ledger.reserve(TENANT, "other", 3)
    up = await ledger.adjust(TENANT, "job", 6, reason="fallback to pixelapi")
    assert isinstance(up, Reservation) and up.amount == 6
    assert up.account == Balance(10, 9, 1)
    too_much = await ledger.adjust(TENANT, "job", 8)
    assert too_much == Shortfall(required=8, available=7)
    assert await ledger.balance(TENANT) == Balance(10, 9, 1)
    assert (await ledger.open_holds(TENANT))["job"] == 6
    down = await ledger.adjust(TENANT, "job", 2)
    assert isinstance(down, Reservation) and down.account == Balance(10, 5, 5)
    adjusts = [e.amount for e in await all_entries(ledger) if e.kind is LedgerKind.adjust]
    assert adjusts == [-4, 2]
    assert await ledger.charge(TENANT, "job") == 2
    with pytest.raises(HoldNotOpen) as refused:
        await ledger.adjust(TENANT, "job", 3)
    assert refused.value.state is HoldState.charged
    with pytest.raises(HoldNotOpen):
        await ledger.adjust(TENANT, "never-reserved", 3)
    await assert_reconciles(ledger)


async def test_debit_refuses_beyond_available(ledger: CreditLedger) -> None:
    await ledger.grant(TENANT, 10, "top-up")
    await ledger.reserve(TENANT, "job", 6)
    with pytest.raises(CreditsShort) as refused:
        await ledger.debit(TENANT, 5, "correction")
    assert (refused.value.required, refused.value.available) == (5, 4)
    assert await ledger.debit(TENANT, 4, "correction") == Balance(6, 6, 0)
    with pytest.raises(ValueError):
        await ledger.grant(TENANT, 0, "nothing")
    with pytest.raises(CreditsShort):
        await ledger.debit("unknown-tenant", 1, "correction")
    await assert_reconciles(ledger)


async def test_entries_paginate_newest_first_with_filters(ledger: CreditLedger) -> None:
    await ledger.grant(TENANT, 100, "first")
    for i in range(12):
        await ledger.reserve(TENANT, f"job-{i}", 1)
        if i % 2:
            await ledger.charge(TENANT, f"job-{i}")
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
    with pytest.raises(ValueError):
        await ledger.entries(TENANT, cursor="not-an-id", limit=5)
    with pytest.raises(ValueError):
        await ledger.entries(TENANT, cursor=None, limit=5, kind="bogus")


async def test_keys_of_a_tenant_share_a_hash_slot(
    ledger: CreditLedger, redis_client: Redis
) -> None:
    await ledger.grant(TENANT, 3, "top-up")
    await ledger.reserve(TENANT, "job", 2)
    await ledger.charge(TENANT, "job")
    names = [str(k) async for k in redis_client.scan_iter(match="mg:credits:*")]
    assert sorted(names) == sorted(
        [keys.credit_account(TENANT), keys.credit_hold(TENANT, "job"), keys.credit_ledger(TENANT)]
    )
    assert all("{t1}" in name for name in names)
    assert 0 < await redis_client.ttl(keys.credit_hold(TENANT, "job")) <= 7 * 86400


async def test_filtered_listing_reads_a_bounded_slice_per_page(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credits, "_SCAN_BATCH", 4)
    monkeypatch.setattr(credits, "_SCAN_MAX", 8)
    await ledger.grant(TENANT, 100, "top-up")
    for i in range(30):
        await ledger.reserve(TENANT, f"job-{i}", 1)
    await ledger.release(TENANT, "job-0")
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
