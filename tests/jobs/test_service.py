"""The job service on a real Redis: the plan it makes (required and refused parameters,
fallbacks that cannot serve), rendering, and cancel (idempotent, refused when finished,
waiting for a submission under way so an accepted task is charged)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.domain.errors import Conflict, MissingParameter, UnsupportedParameter
from app.domain.models import Attempt, AttemptStatus, ChargeReason, JobStatus
from app.jobs.accounting import InsufficientCredits
from app.store import keys
from app.store.jobs import Schedule
from tests.jobs.harness import ALPHA_PRICE, TENANT, Core, job_core


@pytest.fixture
async def core(redis_client: Redis, tmp_path: Path) -> AsyncIterator[Core]:
    async with job_core(redis_client, tmp_path) as built:
        yield built


async def test_a_provider_that_requires_a_parameter_not_given_is_a_missing_parameter(
    core: Core,
) -> None:
    with pytest.raises(MissingParameter) as raised:
        await core.submit(provider="beta")
    problem = raised.value
    assert problem.status == 422
    assert problem.errors[0].pointer == "/style_id"
    assert problem.extra == {
        "parameter": "style_id",
        "provider": "beta",
        "providers_not_requiring": ["alpha"],
    }
    assert await core.redis.zcard(keys.tenant_jobs(TENANT.id)) == 0  # nothing stored
    assert await core.available() == 1000  # nothing held


async def test_a_parameter_a_provider_cannot_honour_stays_unsupported(core: Core) -> None:
    with pytest.raises(UnsupportedParameter) as raised:
        await core.submit(provider="beta", style_id="1:2", width=512)
    assert raised.value.extra["capable_providers"] == ["alpha"]
    assert await core.redis.zcard(keys.tenant_jobs(TENANT.id)) == 0
    assert await core.available() == 1000


async def test_without_a_choice_only_providers_that_can_serve_are_planned(core: Core) -> None:
    job_id = await core.submit(provider=None)
    assert (await core.record(job_id)).plan == ["alpha"]  # beta needs a style_id
    job_id = await core.submit(provider=None, style_id="1:2")
    assert (await core.record(job_id)).plan == ["alpha", "beta"]


async def test_fallbacks_that_cannot_serve_are_left_out(core: Core) -> None:
    job_id = await core.submit(provider="alpha", fallback=["beta"])
    assert (await core.record(job_id)).plan == ["alpha"]


async def test_rendering_signs_urls_and_leaves_the_stored_record_alone(core: Core) -> None:
    job_id = await core.submit()
    await core.step(job_id)
    await core.step(job_id)
    shown = await core.service.get(TENANT, job_id)
    assert shown.output is not None
    (artifact,) = shown.output.artifacts
    assert artifact.url.startswith("http://gateway.test/v1/artifacts/")
    assert "sig=" in artifact.url
    stored = (await core.record(job_id)).job
    assert stored.output is not None and stored.output.artifacts[0].url == ""


async def test_canceling_twice_answers_the_canceled_job_and_charges_once(core: Core) -> None:
    job_id = await core.submit()
    await core.step(job_id)
    first = await core.service.cancel(TENANT, job_id)
    again = await core.service.cancel(TENANT, job_id)
    assert first.status is again.status is JobStatus.canceled
    assert again.credits.charged == ALPHA_PRICE
    assert await core.available() == 1000 - ALPHA_PRICE


async def test_canceling_a_finished_job_is_a_conflict(core: Core) -> None:
    job_id = await core.submit()
    await core.step(job_id)
    await core.step(job_id)
    with pytest.raises(Conflict):
        await core.service.cancel(TENANT, job_id)


async def test_a_cancel_waits_for_a_submission_under_way_and_charges_the_accepted_task(
    core: Core,
) -> None:
    job_id = await core.submit()
    claimed = await core.claim(job_id)
    # a worker records the attempt before the upstream call, as the runner does
    claimed.record.job.attempts.append(Attempt(provider="alpha"))
    claimed = await core.store.save(claimed, schedule=Schedule.keep, lease=claimed.lease)

    async def upstream_answers() -> None:
        await asyncio.sleep(0.3)
        attempt = claimed.record.job.attempts[-1]
        attempt.provider_job_id = "alpha_task_late"
        attempt.status = AttemptStatus.running
        await core.store.save(claimed, schedule=Schedule.due, due_ms=0, lease=claimed.lease)

    answering = asyncio.create_task(upstream_answers())
    canceled = await core.service.cancel(TENANT, job_id)
    await answering
    assert canceled.status is JobStatus.canceled
    (attempt,) = canceled.attempts
    assert attempt.provider_job_id == "alpha_task_late"
    assert attempt.charge_reason is ChargeReason.canceled_after_accept
    assert canceled.credits.charged == ALPHA_PRICE
    assert await core.available() == 1000 - ALPHA_PRICE


async def test_a_submission_the_balance_cannot_cover_is_refused_with_nothing_stored(
    redis_client: Redis, tmp_path: Path
) -> None:
    # No inline media: the job's creation script is the one balance check (no query before).
    async with job_core(redis_client, tmp_path, credits=ALPHA_PRICE - 1) as short:
        with pytest.raises(InsufficientCredits) as raised:
            await short.submit(provider="alpha")
        assert raised.value.status == 402
        assert (raised.value.extra["required"], raised.value.extra["available"]) == (
            ALPHA_PRICE,
            ALPHA_PRICE - 1,
        )
        assert await short.redis.zcard(keys.tenant_jobs(TENANT.id)) == 0  # nothing stored
        assert await short.available() == ALPHA_PRICE - 1  # nothing held
