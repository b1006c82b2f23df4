"""A request about to go well past its reserved turn takes one new turn on the same credential,
after every request reserved meanwhile, instead of reaching the upstream in a bunch with the
requests that went late with it; its second turn goes however late it is.

A stall is a blocking sleep in the event loop between the turn and the send, as a machine short
of CPU makes one: it only ever makes the request later, so the verdicts hold on a busy machine.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.domain.models import AttemptStatus, JobRecord, JobStatus
from app.jobs import gate as gate_module
from app.jobs.gate import LATE_TURN_S, Go, Requeue
from app.providers.base import Failed, UpstreamLimit
from app.store.upstream_budgets import Budget, Turn, Waiting
from tests.jobs.harness import Core, job_core
from tests.utils.deadlines import JOB_S

RATE = UpstreamLimit(rate_per_s=10)
"""Alpha's documented rate in these tests: the gateway spends 8 a second, one each 125 ms."""
STALL_S = LATE_TURN_S * 2
BACKLOG = 32
"""Requests other jobs reserve during a stall to push the new turn past what a step waits
(``INLINE_WAIT_S``): four seconds of them, so the turn stays far off however late the step
runs on a busy machine."""


@pytest.fixture
async def core(
    redis_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Core]:
    async with job_core(redis_client, tmp_path) as built:
        monkeypatch.setattr(built.alpha, "limits", {"default": RATE})
        yield built


class Reservations:
    """Every reservation the gate makes, with the turn it got."""

    def __init__(self, core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[tuple[str, Turn | Waiting]] = []
        budgets = core.runner.gate.budgets
        reserve = budgets.reserve

        async def spied(
            budget: Budget, job_id: str, *, credential: int | None = None, requests: int = 1
        ) -> Turn | Waiting:
            granted = await reserve(budget, job_id, credential=credential, requests=requests)
            self.made.append((job_id, granted))
            return granted

        monkeypatch.setattr(budgets, "reserve", spied)

    def turns_of(self, job_id: str) -> list[Turn]:
        turns = [t for j, t in self.made if j == job_id]
        assert all(isinstance(t, Turn) for t in turns), turns
        return [t for t in turns if isinstance(t, Turn)]


def stall_before_sending(core: Core, monkeypatch: pytest.MonkeyPatch, others: int = 1) -> list[str]:
    """Every step's loop stalls just before its upstream call (after the circuit is asked),
    while ``others`` requests of other jobs are reserved on the same budget. Returns those
    jobs' ids, in the order reserved."""
    gate = core.runner.gate
    ask = gate.circuit_refusal
    reserved: list[str] = []

    async def stalled(provider: str, job_id: str) -> Failed | None:
        time.sleep(STALL_S)  # the event loop runs nothing meanwhile
        stored = await core.store.get(job_id)
        assert stored is not None
        budget = gate.budget(core.alpha, stored.record)
        assert budget is not None
        for _ in range(others):
            other = f"job_other_{len(reserved)}"
            await gate.budgets.reserve(budget, other)
            reserved.append(other)
        return await ask(provider, job_id)

    monkeypatch.setattr(gate, "circuit_refusal", stalled)
    return reserved


def stall_after_clearance(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step's loop stalls right after its turn is granted (the circuit is asked of
    submissions only, so this is where a poll stalls)."""
    gate = core.runner.gate
    clearance = gate.clearance

    async def stalled(record: JobRecord) -> Go | Requeue:
        go = await clearance(record)
        time.sleep(STALL_S)
        return go

    monkeypatch.setattr(gate, "clearance", stalled)


def late_turns(core: Core) -> float:
    value = core.metrics.registry.get_sample_value(
        "mediagate_rate_limited_total", {"scope": "upstream_late"}
    )
    return value or 0.0


async def test_a_request_on_time_keeps_its_turn(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On time is within the gateway's allowance; here a generous one, so that a busy machine's
    ordinary delays between the turn and the send (two Redis round trips) count as on time."""
    monkeypatch.setattr(gate_module, "LATE_TURN_S", JOB_S)
    reservations = Reservations(core, monkeypatch)
    job_id = await core.submit()
    record = await core.step(job_id)
    assert len(core.alpha.submitted) == 1
    assert record.job.attempts[0].status is AttemptStatus.running
    assert len(reservations.turns_of(job_id)) == 1
    assert late_turns(core) == 0


async def test_a_request_stalled_past_its_turn_goes_on_a_new_one_after_those_reserved_meanwhile(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    reservations = Reservations(core, monkeypatch)
    others = stall_before_sending(core, monkeypatch)
    job_id = await core.submit()
    record = await core.step(job_id)

    (other,) = others
    first, second = reservations.turns_of(job_id)
    (theirs,) = reservations.turns_of(other)
    assert first.credential == second.credential
    assert first.at_ms < theirs.at_ms < second.at_ms
    assert len(core.alpha.submitted) == 1  # sent once, on the second turn
    assert record.job.attempts[0].status is AttemptStatus.running
    assert record.upstream is not None and not record.upstream.retaken
    assert late_turns(core) == 1


@pytest.mark.parametrize("drops_unpolled", [False, True])
async def test_a_poll_that_stalled_past_its_turn_takes_a_new_one_unless_its_task_would_be_lost(
    core: Core, monkeypatch: pytest.MonkeyPatch, drops_unpolled: bool
) -> None:
    """Where a task not polled in time is lost (Perfect's ten seconds), a poll goes late on its
    own turn: a second wait in the budget could outlast the task."""
    if drops_unpolled:
        monkeypatch.setattr(core.alpha, "poll_lateness_s", 2.0)
    job_id = await core.submit()
    await core.step(job_id)  # submitted on time
    reservations = Reservations(core, monkeypatch)
    stall_after_clearance(core, monkeypatch)
    record = await core.step(job_id)
    assert core.alpha.polled == ["alpha_task_1"]
    assert record.job.status is JobStatus.succeeded
    turns = reservations.turns_of(job_id)
    assert len(turns) == (1 if drops_unpolled else 2)
    assert len({turn.credential for turn in turns}) == 1
    assert late_turns(core) == (0 if drops_unpolled else 1)


async def test_a_new_turn_far_off_requeues_the_job_and_that_turn_goes_however_late(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    reservations = Reservations(core, monkeypatch)
    stall_before_sending(core, monkeypatch, others=BACKLOG)
    job_id = await core.submit()
    record = await core.step(job_id)

    assert core.alpha.submitted == []  # nothing went out late
    assert record.upstream is not None
    assert record.upstream.retaken and record.upstream.ready_at_ms is not None
    assert record.job.attempts[0].status is AttemptStatus.submitting
    assert late_turns(core) == 1

    record = await core.step(job_id)  # due shortly before its turn; it stalls again
    assert len(core.alpha.submitted) == 1
    assert record.job.attempts[0].status is AttemptStatus.running
    assert len(reservations.turns_of(job_id)) == 2  # the second turn was not taken again
    assert late_turns(core) == 1


async def test_a_turn_without_a_reservation_is_never_late(core: Core) -> None:
    job_id = await core.submit()
    stored = await core.store.get(job_id)
    assert stored is not None
    go = Go(credential=0)
    assert await core.runner.gate.on_time(stored.record, go) is go
