"""Upstream budgets against a real Redis: reservations never overspend a credential pool."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import cast

import pytest
from redis.asyncio import Redis

from app.store import upstream_budgets
from app.store.scripts import Scripts
from app.store.upstream_budgets import Budget, Turn, UpstreamBudgets, Waiting


@pytest.fixture
def budgets(redis_client: Redis) -> UpstreamBudgets:
    return UpstreamBudgets(redis_client, Scripts.register(redis_client))


def _queued_at_the_rate(reserved: list[Turn], interval_ms: int) -> None:
    """Each reservation goes one interval after the one before it on its credential, or, when
    that moment had already passed as it was made (a slow caller), at once: the rule of the
    schedule, read from the Redis clock (``at_ms``, and ``at_ms - wait`` for when it was made),
    not from how fast the test ran."""
    for before, after in zip(reserved, reserved[1:], strict=False):
        made_ms = after.at_ms - round(after.wait_s * 1000)
        assert after.at_ms == max(before.at_ms + interval_ms, made_ms), (before, after)


async def test_reservations_queue_at_the_rate(budgets: UpstreamBudgets) -> None:
    budget = Budget("everypixel", "default", credentials=1, rate_per_s=20)
    waits = [(await budgets.reserve(budget, f"job{i}")) for i in range(10)]
    assert all(isinstance(r, Turn) and r.credential == 0 for r in waits)
    reserved = [r for r in waits if isinstance(r, Turn)]
    assert reserved[0].wait_s == 0
    # each request is scheduled one interval (50 ms) after the previous one
    _queued_at_the_rate(reserved, 50)
    assert all(r.wait_s >= 0 for r in reserved)


async def test_a_submission_of_two_requests_takes_two_intervals(budgets: UpstreamBudgets) -> None:
    budget = Budget("perfectcorp", "default", credentials=1, rate_per_s=10)
    submit = await budgets.reserve(budget, "a", requests=2)
    poll = await budgets.reserve(budget, "b")
    after = await budgets.reserve(budget, "c")
    assert isinstance(submit, Turn) and submit.wait_s == 0
    assert isinstance(poll, Turn) and isinstance(after, Turn)
    # the submission's two requests go at once; the next request waits for both intervals
    _queued_at_the_rate([submit, poll], 200)
    _queued_at_the_rate([poll, after], 100)


async def test_a_pool_spreads_requests_over_its_credentials(budgets: UpstreamBudgets) -> None:
    budget = Budget("everypixel", "default", credentials=4, rate_per_s=10)
    reserved = [await budgets.reserve(budget, f"job{i}") for i in range(8)]
    assert [r.credential for r in reserved if isinstance(r, Turn)] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert [r.wait_s for r in reserved if isinstance(r, Turn)][:4] == [0, 0, 0, 0]
    # the second round waits one interval (100 ms) after the first on the same credential
    for first, second in zip(reserved[:4], reserved[4:], strict=True):
        assert isinstance(first, Turn) and isinstance(second, Turn)
        _queued_at_the_rate([first, second], 100)


async def test_a_bound_job_stays_on_its_credential(budgets: UpstreamBudgets) -> None:
    budget = Budget("everypixel", "default", credentials=4, rate_per_s=10)
    picks = [await budgets.reserve(budget, "job", credential=2) for _ in range(3)]
    assert [cast(Turn, p).credential for p in picks if p] == [2, 2, 2]
    other = await budgets.reserve(budget, "other")
    assert isinstance(other, Turn) and other.credential == 0 and other.wait_s == 0


async def test_one_job_at_a_time_per_credential(budgets: UpstreamBudgets) -> None:
    budget = Budget("everypixel", "tasks", credentials=1, concurrent_jobs=1)
    first = await budgets.reserve(budget, "tts1")
    assert isinstance(first, Turn) and first.credential == 0
    assert isinstance(await budgets.reserve(budget, "tts2"), Waiting)
    again = await budgets.reserve(budget, "tts1", credential=0)  # its polls keep the slot
    assert isinstance(again, Turn)
    await budgets.release(budget, "tts1", 0)
    assert isinstance(await budgets.reserve(budget, "tts2"), Turn)


async def test_every_credential_shares_the_egress_rate(budgets: UpstreamBudgets) -> None:
    """A per-IP limit: requests on different credentials still queue one egress interval
    apart, while each credential's own schedule moves on as well."""
    budget = Budget("perfectcorp", "default", credentials=3, rate_per_s=100, egress_rate_per_s=10)
    reserved = [await budgets.reserve(budget, f"job{i}") for i in range(6)]
    turns = [r for r in reserved if isinstance(r, Turn)]
    assert len(turns) == 6
    assert {t.credential for t in turns} == {0, 1, 2}
    _queued_at_the_rate(turns, 100)  # the egress interval, across credentials


async def test_each_credential_keeps_its_own_plans_rate(budgets: UpstreamBudgets) -> None:
    """Credentials on different plans: each one's schedule moves on by its own interval."""
    budget = Budget(
        "pixelapi", "default", credentials=2, rate_per_s=1, credential_rates_per_s=(1.0, 10.0)
    )
    slow = [await budgets.reserve(budget, f"s{i}", credential=0) for i in range(3)]
    fast = [await budgets.reserve(budget, f"f{i}", credential=1) for i in range(3)]
    _queued_at_the_rate(cast(list[Turn], [t for t in slow if t]), 1000)
    _queued_at_the_rate(cast(list[Turn], [t for t in fast if t]), 100)


async def test_egress_job_slots_hold_across_credentials(budgets: UpstreamBudgets) -> None:
    budget = Budget(
        "perfectcorp", "default", credentials=2, rate_per_s=100, egress_rate_per_s=100,
        egress_jobs=1,
    )  # fmt: skip
    first = await budgets.reserve(budget, "a", requests=2)
    assert isinstance(first, Turn)
    # another credential is free, but the address runs one task at a time
    assert isinstance(await budgets.reserve(budget, "b", requests=2), Waiting)
    polled = await budgets.reserve(budget, "a", credential=first.credential)
    assert isinstance(polled, Turn)  # the running task is always polled
    await budgets.release(budget, "a", first.credential)
    assert isinstance(await budgets.reserve(budget, "b", requests=2), Turn)


async def test_a_crashed_jobs_slot_lapses(redis_client: Redis) -> None:
    budgets = UpstreamBudgets(redis_client, Scripts.register(redis_client), slot_lapse_s=0.2)
    budget = Budget("everypixel", "tasks", credentials=1, concurrent_jobs=1)
    assert isinstance(await budgets.reserve(budget, "crashed"), Turn)
    assert isinstance(await budgets.reserve(budget, "next"), Waiting)
    await asyncio.sleep(0.25)
    assert isinstance(await budgets.reserve(budget, "next"), Turn)


async def test_concurrent_processes_never_schedule_two_requests_closer_than_the_interval(
    separate_clients: list[Redis],
) -> None:
    budget = Budget("everypixel", "default", credentials=2, rate_per_s=50)
    pools = [UpstreamBudgets(c, Scripts.register(c)) for c in separate_clients]

    async def reserve(i: int) -> tuple[int, int]:
        reservation = await pools[i % len(pools)].reserve(budget, f"job{i}")
        assert isinstance(reservation, Turn)
        return reservation.credential, reservation.at_ms

    results = await asyncio.gather(*(reserve(i) for i in range(200)))
    by_credential: dict[int, list[int]] = defaultdict(list)
    for credential, at in results:
        by_credential[credential].append(at)
    # every request got its reservation, on one of the pool's two credentials
    assert set(by_credential) <= {0, 1}
    assert sum(len(times) for times in by_credential.values()) == 200
    for times in by_credential.values():
        times.sort()
        # never two on one credential closer than one interval (20 ms, Redis clock)
        assert all(b - a >= 20 for a, b in zip(times, times[1:], strict=False))


async def test_jobs_waiting_for_a_slot_are_served_in_order_and_told_their_place(
    budgets: UpstreamBudgets,
) -> None:
    budget = Budget("everypixel", "tasks", credentials=1, concurrent_jobs=1)
    assert isinstance(await budgets.reserve(budget, "a"), Turn)
    assert [await budgets.reserve(budget, job) for job in "bcd"] == [
        Waiting(1),
        Waiting(2),
        Waiting(3),
    ]
    assert await budgets.reserve(budget, "c") == Waiting(2)  # asking again keeps the place
    await budgets.release(budget, "a", 0)
    # a slot is free, but it is b's: the later waiters asking first do not take it
    assert await budgets.reserve(budget, "d") == Waiting(3)
    assert await budgets.reserve(budget, "c") == Waiting(2)
    assert isinstance(await budgets.reserve(budget, "b"), Turn)
    assert await budgets.reserve(budget, "d") == Waiting(2)
    await budgets.leave_line(budget, "c")  # c ended while it waited
    assert await budgets.reserve(budget, "d") == Waiting(1)
    assert isinstance(await budgets.reserve(budget, "b", credential=0), Turn)  # b polls


async def test_a_waiter_that_stops_asking_loses_its_place(
    budgets: UpstreamBudgets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_budgets, "WAITER_LAPSE_S", 0.2)
    budget = Budget("everypixel", "tasks", credentials=1, concurrent_jobs=1)
    assert isinstance(await budgets.reserve(budget, "a"), Turn)
    assert await budgets.reserve(budget, "gone") == Waiting(1)
    assert await budgets.reserve(budget, "b") == Waiting(2)
    await asyncio.sleep(0.3)
    assert await budgets.reserve(budget, "b") == Waiting(1)
    await budgets.release(budget, "a", 0)
    assert isinstance(await budgets.reserve(budget, "b"), Turn)


async def test_without_job_slots_nobody_waits_in_line(budgets: UpstreamBudgets) -> None:
    budget = Budget("pixelapi", "default", credentials=1, rate_per_s=1000)
    turns = [await budgets.reserve(budget, f"job{i}") for i in range(20)]
    assert all(isinstance(t, Turn) for t in turns)
