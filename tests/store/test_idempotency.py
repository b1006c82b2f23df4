"""Idempotency-Key records against a real Redis: one winner, replay, mismatch, expiry."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from app.store import keys
from app.store.idempotency import Began, IdempotencyStore, InFlight, Mismatch, Replay
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
        *(stores[i % 5].begin("t1", "key-1", "fp-a") for i in range(50))
    )
    assert outcomes.count(Began()) == 1
    assert outcomes.count(InFlight()) == 49


async def test_completed_request_replays_and_refuses_another_body(
    store: IdempotencyStore,
) -> None:
    assert await store.begin("t1", "key-1", "fp-a") == Began()
    assert await store.begin("t1", "key-1", "fp-b") == Mismatch()  # in flight, other body
    assert await store.complete("t1", "key-1", "fp-a", 202, HEADERS, BODY)
    replay = await store.begin("t1", "key-1", "fp-a")
    assert replay == Replay(status=202, headers=HEADERS, body=BODY)
    assert await store.begin("t1", "key-1", "fp-b") == Mismatch()
    assert not await store.complete("t1", "key-1", "fp-a", 500, {}, b"")  # first answer stays
    assert not await store.abandon("t1", "key-1")  # a stored response is never dropped
    assert await store.begin("t1", "key-1", "fp-a") == replay


async def test_other_tenant_with_the_same_key_is_independent(store: IdempotencyStore) -> None:
    assert await store.begin("t1", "shared", "fp-a") == Began()
    assert await store.begin("t2", "shared", "fp-b") == Began()
    await store.complete("t2", "shared", "fp-b", 201, {}, b"t2")
    assert await store.begin("t1", "shared", "fp-a") == InFlight()
    assert await store.begin("t2", "shared", "fp-b") == Replay(201, {}, b"t2")


async def test_abandoned_request_may_be_retried(store: IdempotencyStore) -> None:
    assert await store.begin("t1", "key-1", "fp-a") == Began()
    assert await store.abandon("t1", "key-1")
    assert not await store.abandon("t1", "key-1")
    assert await store.begin("t1", "key-1", "fp-b") == Began()


async def test_records_expire(redis_client: Redis) -> None:
    # A finished request's record lapses after its time to live...
    brief = IdempotencyStore(redis_client, Scripts.register(redis_client), ttl_s=0.2, lock_s=0.1)
    assert await brief.begin("t1", "done", "fp") == Began()
    await brief.complete("t1", "done", "fp", 200, {}, b"ok")
    await asyncio.sleep(0.25)
    assert await records(redis_client) == []
    assert await brief.begin("t1", "done", "fp-other") == Began()

    # ...and an unfinished one's lock lapses long before (its process died), while a finished
    # record, kept for its whole time to live, is still replayed.
    store = IdempotencyStore(redis_client, Scripts.register(redis_client), ttl_s=3600, lock_s=0.1)
    assert await store.begin("t2", "done", "fp") == Began()
    await store.complete("t2", "done", "fp", 200, {}, b"ok")
    assert await store.begin("t2", "stuck", "fp") == Began()  # its process dies here
    await asyncio.sleep(0.12)
    assert await store.begin("t2", "stuck", "fp") == Began()
    assert await store.begin("t2", "done", "fp") == Replay(200, {}, b"ok")


async def test_response_of_an_expired_lock_is_still_stored(redis_client: Redis) -> None:
    store = IdempotencyStore(redis_client, Scripts.register(redis_client), lock_s=0.05)
    assert await store.begin("t1", "slow", "fp") == Began()
    await asyncio.sleep(0.08)
    assert await store.complete("t1", "slow", "fp", 202, {}, b"late")
    assert await store.begin("t1", "slow", "fp") == Replay(202, {}, b"late")
    (record,) = await records(redis_client)
    assert 86_000_000 < await redis_client.pttl(record) <= 86_400_000
