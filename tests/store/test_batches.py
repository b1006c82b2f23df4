"""The batch scripts on a real Redis: counters that add up whatever order things happen in."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from app.domain.batches import BatchCounts, BatchStatus
from app.domain.models import JobStatus
from app.domain.operations import Operation
from app.store import keys
from app.store.batches import BatchStore
from app.store.scripts import Scripts


def store(redis: Redis) -> BatchStore:
    return BatchStore(redis, Scripts.register(redis), retention_s=3600)


async def new_batch(batches: BatchStore, total: int, callback: str | None = None) -> str:
    await batches.create(
        "batch_t",
        "t1",
        Operation.image_keywords,
        [f'{{"n": {i}}}' for i in range(total)],
        metadata={"m": 1},
        callback_url=callback,
    )
    return "batch_t"


async def counts(batches: BatchStore, batch_id: str) -> BatchCounts:
    batch = await batches.get(batch_id)
    assert batch is not None
    assert sum(batch.counts.model_dump().values()) == batch.total
    return batch.counts


async def test_items_start_in_order_and_end_once(redis_client: Redis) -> None:
    batches = store(redis_client)
    batch_id = await new_batch(batches, 3, callback="https://example.com/hook")
    first = await batches.take(batch_id, "job_a")
    assert first is not None and (first.index, first.body, first.resumed) == (0, '{"n": 0}', False)
    assert (await counts(batches, batch_id)).running == 1  # starting
    await batches.started(batch_id, first)
    await batches.started(batch_id, first)  # a repeat changes nothing
    second = await batches.take(batch_id, "job_b")
    assert second is not None and second.index == 1
    await batches.item_failed(
        batch_id, second, {"code": "invalid_media", "message": "x"}, stop=False
    )
    third = await batches.take(batch_id, "job_c")
    assert third is not None
    await batches.started(batch_id, third)
    assert await batches.take(batch_id, "job_d") is None
    assert await batches.open_jobs(batch_id) == ["job_a", "job_c"]
    assert not await batches.complete(batch_id)  # two jobs still run

    await batches.job_ended(batch_id, "job_a", JobStatus.succeeded)
    await batches.job_ended(batch_id, "job_a", JobStatus.succeeded)  # counted once
    await batches.job_ended(batch_id, "job_c", JobStatus.canceled)
    assert await counts(batches, batch_id) == BatchCounts(succeeded=1, failed=1, canceled=1)
    assert await batches.complete(batch_id)
    assert not await batches.complete(batch_id)  # and only once
    assert await redis_client.zscore(keys.WEBHOOKS_DUE, batch_id) is not None
    assert await redis_client.zscore(keys.BATCHES_DUE, batch_id) is None
    assert 0 < await redis_client.ttl(keys.batch(batch_id)) <= 3600
    results = await batches.results(batch_id, 0, 3)
    assert results[0] == {"job_id": "job_a"} and results[1]["status"] == "failed"


async def test_an_item_taken_by_a_driver_that_died_is_handed_out_again_with_its_job_id(
    redis_client: Redis,
) -> None:
    batches = store(redis_client)
    batch_id = await new_batch(batches, 2)
    taken = await batches.take(batch_id, "job_first")
    assert taken is not None
    again = await batches.take(batch_id, "job_other")  # the next driver, after a crash
    assert again is not None
    assert (again.index, again.job_id, again.resumed) == (0, "job_first", True)
    await batches.started(batch_id, again)
    following = await batches.take(batch_id, "job_second")
    assert following is not None and following.index == 1 and not following.resumed


async def test_running_out_of_credits_ends_every_item_not_started(redis_client: Redis) -> None:
    batches = store(redis_client)
    batch_id = await new_batch(batches, 10)
    for i in range(3):
        item = await batches.take(batch_id, f"job_{i}")
        assert item is not None
        await batches.started(batch_id, item)
    broke = await batches.take(batch_id, "job_3")
    assert broke is not None
    short = {"code": "insufficient_credits", "message": "no"}
    await batches.item_failed(batch_id, broke, short, stop=True)
    assert await batches.take(batch_id, "job_4") is None
    assert await counts(batches, batch_id) == BatchCounts(running=3, failed=7)
    batch = await batches.get(batch_id)
    assert batch is not None and batch.stopped_at == 4
    assert batch.stopped == {"status": "failed", "error": short}


async def test_a_put_back_item_is_taken_again_unless_the_batch_was_canceled(
    redis_client: Redis,
) -> None:
    batches = store(redis_client)
    batch_id = await new_batch(batches, 3)
    item = await batches.take(batch_id, "job_a")
    assert item is not None
    await batches.untake(batch_id, item)
    again = await batches.take(batch_id, "job_b")
    assert again is not None and again.index == 0 and again.job_id == "job_b"

    assert await batches.cancel(batch_id) == BatchStatus.running
    assert await batches.cancel(batch_id) == BatchStatus.canceling  # once
    assert await counts(batches, batch_id) == BatchCounts(running=1, canceled=2)
    await batches.untake(batch_id, again)  # the slot-full item of a canceled batch
    assert await counts(batches, batch_id) == BatchCounts(canceled=3)
    assert await batches.take(batch_id, "job_c") is None
    assert await batches.complete(batch_id)
    batch = await batches.get(batch_id)
    assert batch is not None and batch.status == BatchStatus.completed
    assert await redis_client.zscore(keys.WEBHOOKS_DUE, batch_id) is None  # no callback_url


async def test_concurrent_drivers_and_a_cancel_keep_the_counts_adding_up(
    separate_clients: list[Redis], redis_client: Redis
) -> None:
    stores = [store(c) for c in separate_clients]
    batch_id = await new_batch(stores[0], 200)

    async def drive(batches: BatchStore, name: str) -> None:
        n = 0
        while True:
            item = await batches.take(batch_id, f"job_{name}_{n}")
            n += 1
            if item is None:
                return
            if item.index % 7 == 0:
                await batches.item_failed(batch_id, item, {"code": "x", "message": "x"}, stop=False)
            else:
                await batches.started(batch_id, item)
                await batches.job_ended(batch_id, item.job_id, JobStatus.succeeded)

    async def cancel_soon() -> None:
        await asyncio.sleep(0.01)
        await stores[4].cancel(batch_id)

    await asyncio.gather(*(drive(s, str(i)) for i, s in enumerate(stores[:4])), cancel_soon())
    final = await counts(stores[0], batch_id)
    assert final.pending == 0 and final.running == 0
    results = await stores[0].results(batch_id, 0, 200)
    started = [r for r in results if "job_id" in r]
    assert final.succeeded == len(started)
    assert final.failed == sum(1 for r in results if r.get("status") == "failed")
    assert await stores[0].complete(batch_id)
