"""How long an idle worker pauses between claims: doubling from 50 ms to 400 ms while claims
find nothing, never past the time the next job in the queue comes due, and ended at once by
the doorbell (a job created in the process, a step ended). The pauses the worker asks for are
recorded, not timed."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from app.jobs.doorbell import Doorbell
from app.metrics import Metrics
from app.worker import IDLE_SLEEP_MAX_S, IDLE_SLEEP_S, MIN_PAUSE_S, Worker
from tests.utils.deadlines import JOB_S


class EmptyQueue:
    """A due-queue with nothing due; its next job due ``next_due_s`` from now (None: empty)."""

    def __init__(self, next_due_s: float | None) -> None:
        self.next_due_s = next_due_s
        self.redis: Any = None

    async def claim(self, limit: int, lease_s: float) -> list[Any]:
        return []

    async def next_due_in_s(self) -> float | None:
        return self.next_due_s

    async def queue_depth(self) -> int:
        return 0


class Presence:
    async def beat(self, worker_id: str) -> None:
        return None

    async def leave(self, worker_id: str) -> None:
        return None


class RecordingDoorbell(Doorbell):
    def __init__(self, worker: list[Worker], stop_after: int) -> None:
        super().__init__()
        self.pauses: list[float] = []
        self.worker = worker
        self.stop_after = stop_after

    async def wait(self, timeout_s: float) -> None:
        self.pauses.append(timeout_s)
        if len(self.pauses) == self.stop_after:
            self.worker[0]._stopping.set()


async def pauses_of(next_due_s: float | None, count: int = 7) -> list[float]:
    made: list[Worker] = []
    bell = RecordingDoorbell(made, count)
    worker = Worker(
        EmptyQueue(next_due_s),  # type: ignore[arg-type]
        runner=None,  # type: ignore[arg-type]
        metrics=Metrics(CollectorRegistry()),
        concurrency=4,
        lease_s=30,
        presence=Presence(),  # type: ignore[arg-type]
        doorbell=bell,
    )
    made.append(worker)
    await asyncio.wait_for(worker.run(), JOB_S)
    return bell.pauses


async def test_an_idle_worker_pauses_longer_and_longer_up_to_the_cap() -> None:
    pauses = await pauses_of(None)
    assert pauses[0] == IDLE_SLEEP_S
    assert all(b == min(a * 2, IDLE_SLEEP_MAX_S) for a, b in zip(pauses, pauses[1:], strict=False))
    assert pauses[-1] == IDLE_SLEEP_MAX_S


async def test_a_pause_never_outlasts_the_next_due_job() -> None:
    assert set(await pauses_of(0.12)) <= {IDLE_SLEEP_S, 0.1, 0.12}
    assert max(await pauses_of(0.12)) == 0.12
    assert set(await pauses_of(-1.0)) == {MIN_PAUSE_S}  # due now, taken by another worker


async def test_the_doorbell_ends_a_pause_and_a_ring_before_it_counts() -> None:
    bell = Doorbell()
    bell.ring()
    await asyncio.wait_for(bell.wait(3600), JOB_S)  # rung before: returns at once
    waiting = asyncio.create_task(bell.wait(3600))
    await asyncio.sleep(0)
    bell.ring()
    await asyncio.wait_for(waiting, JOB_S)
