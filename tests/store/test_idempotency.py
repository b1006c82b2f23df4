"""Idempotency-Key records against a real Redis: one winner, replay, mismatch, expiry, and
the one id a key is bound to across its attempts."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from app.store import keys
from app.store.idempotency import Began, Bound, IdempotencyStore, InFlight, Mismatch, Replay
from app.store.scripts import Scripts

BODY = b'{"id": "job_1", "status": "queued"}\x00\xff'
HEADERS = {"content-type": "application/json", "location": "/v1/jobs/job_1"}


async def records(redis: Redis, tenant_id: str = "t1") -> list[str]:
    return [str(k) async for k in redis.scan_iter(match=keys.idempotency(tenant_id, "*"))]


@pytest.fixture
def store(redis_client: Redis) -> IdempotencyStore:
    return IdempotencyStore(redis_client, Scripts.register(redis_client), lock_s=60)


@pytest.fixture
def stores(separate_clients: list[Redis]) -> list[IdempotencyStore]:
    """Stores on separate connection pools, as five processes would have."""
    return [IdempotencyStore(c, Scripts.register(c), lock_s=60) for c in separate_clients]


async def test_concurrent_begins_have_one_winner(stores: list[IdempotencyStore]) -> None:
    outcomes = await asyncio.gather(
        *(stores[i % 5].begin("t1", "key-1", "fp-a", f"obj_{i}") for i in range(50))
    )
    began = [outcome for outcome in outcomes if isinstance(outcome, Began)]
    assert len(began) == 1
    assert outcomes.count(InFlight()) == 49
    assert began[0].bound == Bound(f"obj_{outcomes.index(began[0])}", may_exist=False)


async def test_completed_request_replays_and_refuses_another_body(
    store: IdempotencyStore,
) -> None:
    began = await store.begin("t1", "key-1", "fp-a")
    assert isinstance(began, Began)
    assert await store.begin("t1", "key-1", "fp-b") == Mismatch()  # in flight, other body
    assert await store.complete("t1", "key-1", "fp-a", 202, HEADERS, BODY)
    replay = await store.begin("t1", "key-1", "fp-a")
    assert replay == Replay(status=202, headers=HEADERS, body=BODY)
    assert await store.begin("t1", "key-1", "fp-b") == Mismatch()
    assert not await store.complete("t1", "key-1", "fp-a", 500, {}, b"")  # first answer stays
    for forget in (True, False):  # a stored response is never dropped
        assert not await store.abandon("t1", "key-1", began.attempt, forget=forget)
    assert await store.begin("t1", "key-1", "fp-a") == replay


async def test_other_tenant_with_the_same_key_is_independent(store: IdempotencyStore) -> None:
    assert isinstance(await store.begin("t1", "shared", "fp-a"), Began)
    assert isinstance(await store.begin("t2", "shared", "fp-b"), Began)
    await store.complete("t2", "shared", "fp-b", 201, {}, b"t2")
    assert await store.begin("t1", "shared", "fp-a") == InFlight()
    assert await store.begin("t2", "shared", "fp-b") == Replay(201, {}, b"t2")


async def test_abandoned_request_may_be_retried(store: IdempotencyStore) -> None:
    """A request refused before it made anything frees its key, for any request."""
    began = await store.begin("t1", "key-1", "fp-a", "obj_1")
    assert isinstance(began, Began)
    assert await store.abandon("t1", "key-1", began.attempt, forget=True)
    assert not await store.abandon("t1", "key-1", began.attempt, forget=True)
    again = await store.begin("t1", "key-1", "fp-b", "obj_2")
    assert isinstance(again, Began) and again.bound == Bound("obj_2", may_exist=False)


async def test_records_expire(redis_client: Redis) -> None:
    # A finished request's record lapses after its time to live...
    brief = IdempotencyStore(redis_client, Scripts.register(redis_client), ttl_s=0.2, lock_s=0.1)
    assert isinstance(await brief.begin("t1", "done", "fp"), Began)
    await brief.complete("t1", "done", "fp", 200, {}, b"ok")
    await asyncio.sleep(0.25)
    assert await records(redis_client) == []
    assert isinstance(await brief.begin("t1", "done", "fp-other"), Began)

    # ...and an unfinished one's lock lapses long before (its process died): the next attempt
    # of the same request takes the key over, bound to the same id and told it may exist,
    # while a finished record, kept for its whole time to live, is still replayed.
    store = IdempotencyStore(redis_client, Scripts.register(redis_client), ttl_s=3600, lock_s=0.1)
    assert isinstance(await store.begin("t2", "done", "fp"), Began)
    await store.complete("t2", "done", "fp", 200, {}, b"ok")
    stuck = await store.begin("t2", "stuck", "fp", "obj_1")  # its process dies here
    assert isinstance(stuck, Began) and stuck.bound == Bound("obj_1", may_exist=False)
    await asyncio.sleep(0.12)
    again = await store.begin("t2", "stuck", "fp", "obj_2")
    assert isinstance(again, Began) and again.bound == Bound("obj_1", may_exist=True)
    assert await store.begin("t2", "done", "fp") == Replay(200, {}, b"ok")


async def test_response_of_an_expired_lock_is_still_stored(redis_client: Redis) -> None:
    store = IdempotencyStore(redis_client, Scripts.register(redis_client), lock_s=0.05)
    assert isinstance(await store.begin("t1", "slow", "fp"), Began)
    await asyncio.sleep(0.08)
    assert await store.complete("t1", "slow", "fp", 202, {}, b"late")
    assert await store.begin("t1", "slow", "fp") == Replay(202, {}, b"late")
    (record,) = await records(redis_client)
    assert 86_000_000 < await redis_client.pttl(record) <= 86_400_000


async def test_a_key_stays_bound_to_its_request_and_id_across_attempts(
    store: IdempotencyStore,
) -> None:
    """An attempt whose outcome is unknown releases the key but keeps it bound: the next
    attempt runs at once, under the first id, told the object may exist; another request
    with the key is refused, before and after."""
    first = await store.begin("t1", "order", "fp-a", "obj_1")
    assert isinstance(first, Began) and first.bound == Bound("obj_1", may_exist=False)
    assert await store.begin("t1", "order", "fp-a", "obj_2") == InFlight()
    assert await store.abandon("t1", "order", first.attempt, forget=False)
    assert await store.begin("t1", "order", "fp-b", "obj_3") == Mismatch()
    second = await store.begin("t1", "order", "fp-a", "obj_4")
    assert isinstance(second, Began) and second.bound == Bound("obj_1", may_exist=True)
    assert await store.begin("t1", "order", "fp-a", "obj_5") == InFlight()
    # refused now, but an earlier attempt's outcome is unknown: the key stays bound
    assert await store.abandon("t1", "order", second.attempt, forget=True)
    assert await store.begin("t1", "order", "fp-b", "obj_6") == Mismatch()
    third = await store.begin("t1", "order", "fp-a", "obj_7")
    assert isinstance(third, Began) and third.bound == Bound("obj_1", may_exist=True)
    assert await store.complete("t1", "order", "fp-a", 202, {}, b"obj_1")
    assert await store.begin("t1", "order", "fp-a", "obj_8") == Replay(202, {}, b"obj_1")


async def test_only_the_attempt_holding_the_key_abandons_it(redis_client: Redis) -> None:
    """An attempt that outran its lock, and whose key a retry took over, cannot free the key
    from under the retry; its response is still stored (the request did run)."""
    store = IdempotencyStore(redis_client, Scripts.register(redis_client), lock_s=0.05)
    slow = await store.begin("t1", "order", "fp", "obj_1")
    assert isinstance(slow, Began)
    await asyncio.sleep(0.08)
    retry = await store.begin("t1", "order", "fp", "obj_2")
    assert isinstance(retry, Began) and retry.bound == Bound("obj_1", may_exist=True)
    for forget in (True, False):
        assert not await store.abandon("t1", "order", slow.attempt, forget=forget)
    assert await store.begin("t1", "order", "fp", "obj_3") == InFlight()
    assert await store.complete("t1", "order", "fp", 202, {}, b"obj_1")
    assert not await store.abandon("t1", "order", retry.attempt, forget=False)
    assert await store.begin("t1", "order", "fp", "obj_4") == Replay(202, {}, b"obj_1")


async def test_a_route_that_binds_nothing_has_its_key_freed(store: IdempotencyStore) -> None:
    began = await store.begin("t1", "cancel", "fp-a")
    assert isinstance(began, Began) and began.bound is None
    assert await store.abandon("t1", "cancel", began.attempt, forget=True)
    again = await store.begin("t1", "cancel", "fp-b")
    assert isinstance(again, Began) and again.bound is None
