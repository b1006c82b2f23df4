"""A step keeps its job's lease while a slow upstream call runs, so no other worker takes the
job meanwhile and the upstream hears of it once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.domain.models import JobStatus
from app.providers.base import Call, SubmitResult, Submitted
from app.store import keys
from app.store.jobs import SaveRefused, Stored
from tests.jobs.harness import Core, job_core, picture
from tests.utils.deadlines import JOB_S

LEASE_S = 2.0
"""The step's lease, renewed every third of it while the upstream call below is held."""


@pytest.fixture
async def core(redis_client: Redis, tmp_path: Path) -> AsyncIterator[Core]:
    async with job_core(redis_client, tmp_path) as built:
        yield built


async def lease_expiry(core: Core, job_id: str) -> float | None:
    return await core.redis.zscore(keys.LEASES, job_id)


async def claimed_shortly(core: Core) -> tuple[str, Stored, float]:
    """A job claimed, its lease shortened to ``LEASE_S`` (the runner's too), and when that
    lease ends."""
    job_id = await core.submit()
    stored = await core.claim(job_id)
    assert stored.lease is not None
    await core.store.renew(job_id, stored.lease, LEASE_S)  # the claim's lease, shortened
    first = await lease_expiry(core, job_id)
    assert first is not None
    core.runner.lease_s = LEASE_S
    return job_id, stored, first


async def test_a_slow_upstream_call_keeps_its_job_leased(core: Core) -> None:
    job_id, stored, first = await claimed_shortly(core)
    answered = asyncio.Event()
    calls: list[Call] = []

    async def slow_submit(call: Call) -> SubmitResult:
        calls.append(call)
        await answered.wait()
        return picture()

    core.alpha.submit = slow_submit  # type: ignore[method-assign]
    step = asyncio.create_task(core.runner.step(stored))
    # Held until the renewals have carried the lease a whole lease past its first expiry
    # (however long that takes on this machine): the job was never left to lapse.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOB_S
    while (await lease_expiry(core, job_id) or 0) < first + LEASE_S * 1000:
        assert loop.time() < deadline, "the lease was not renewed during the upstream call"
        assert not step.done()
        await asyncio.sleep(LEASE_S / 10)
    answered.set()
    record = (await step).record
    assert record.job.status is JobStatus.succeeded
    assert len(calls) == 1
    assert await lease_expiry(core, job_id) is None  # released with the terminal save


def counted_renewals(core: Core, answer: bool | None = None) -> list[str]:
    """The job ids the runner's renewals named, in order; each renewal answers ``answer``
    (None: the store's own answer)."""
    renewed: list[str] = []
    renew = core.store.renew

    async def counting(job_id: str, lease: str, lease_s: float) -> bool:
        renewed.append(job_id)
        found = await renew(job_id, lease, lease_s)
        return found if answer is None else answer

    core.store.renew = counting  # type: ignore[method-assign]
    return renewed


async def test_a_renewal_that_finds_the_lease_gone_renews_no_more(core: Core) -> None:
    job_id = await core.submit()
    stored = await core.claim(job_id)
    core.runner.lease_s = LEASE_S
    renewed = counted_renewals(core, answer=False)
    answered = asyncio.Event()

    async def slow_submit(call: Call) -> SubmitResult:
        await answered.wait()
        return picture()

    core.alpha.submit = slow_submit  # type: ignore[method-assign]
    step = asyncio.create_task(core.runner.step(stored))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOB_S
    while not renewed:
        assert loop.time() < deadline, "the lease was never renewed during the upstream call"
        await asyncio.sleep(LEASE_S / 10)
    await asyncio.sleep(LEASE_S)  # three more renewal periods, the upstream call still held
    assert not step.done()
    assert renewed == [job_id]
    answered.set()
    assert (await step).record.job.status is JobStatus.succeeded  # its claim's lease still held


async def test_no_renewal_outlives_its_step(core: Core) -> None:
    job_id = await core.submit()
    stored = await core.claim(job_id)
    core.runner.lease_s = LEASE_S
    renewed = counted_renewals(core)
    record = (await core.runner.step(stored)).record
    assert record.job.status is JobStatus.running  # submitted: polled by a later step
    before = list(renewed)
    await asyncio.sleep(LEASE_S)  # three renewal periods after the step
    assert renewed == before
    assert await lease_expiry(core, job_id) is None


async def test_a_renewal_the_store_did_not_answer_is_tried_again(core: Core) -> None:
    """A Redis error on a renewal (a blip, a failover) says nothing about the lease: the
    renewals go on, no other worker takes the job while its submission is under way, and the
    upstream hears of it once."""
    job_id, stored, first = await claimed_shortly(core)
    renew = core.store.renew
    blips: list[str] = []

    async def blip_once(job_id: str, lease: str, lease_s: float) -> bool:
        if not blips:
            blips.append(job_id)
            raise RedisConnectionError("failover")
        return await renew(job_id, lease, lease_s)

    core.store.renew = blip_once  # type: ignore[method-assign]
    answered = asyncio.Event()
    calls: list[Call] = []

    async def slow_submit(call: Call) -> SubmitResult:
        calls.append(call)
        if len(calls) == 1:
            await answered.wait()
        return Submitted(f"task_{len(calls)}", poll_after_s=30)

    core.alpha.submit = slow_submit  # type: ignore[method-assign]
    step = asyncio.create_task(core.runner.step(stored))
    # Another worker looks for the job until the renewals have carried the lease a whole
    # lease past its first expiry (however long that takes on this machine); a job whose
    # lease lapsed meanwhile is taken, and stepped, as a worker would.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOB_S
    while (await lease_expiry(core, job_id) or 0) < first + LEASE_S * 1000:
        taken = [s for s in await core.store.claim(10, 30) if s.record.job.id == job_id]
        if taken:
            await core.runner.step(taken[0])
            break
        assert loop.time() < deadline, "the lease was neither renewed nor let lapse"
        await asyncio.sleep(LEASE_S / 10)
    answered.set()
    with suppress(SaveRefused):  # the first step's save, where the job was taken from it
        await step
    assert blips == [job_id]
    assert len(calls) == 1
    record = await core.record(job_id)
    assert [a.provider_job_id for a in record.job.attempts] == ["task_1"]
