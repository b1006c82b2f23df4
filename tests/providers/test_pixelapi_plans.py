"""PixelAPI plans per credential ("Rate Limits & Plans": Free 5, Starter 20, Pro 60, Scale 200
requests/min), the most careful paid plan when none is said, and a job "stuck in queued"
resubmitted after the document's two minutes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from redis.asyncio import Redis

from app.domain.errors import ErrorCode
from app.domain.operations import GenerateImage, Operation
from app.jobs.gate import RATE_MARGIN, UpstreamGate
from app.providers import pixelapi
from app.providers.base import AdapterConfig, Call, Credential, Failed, Progress, UpstreamLimit
from app.providers.pixelapi import PixelApiAdapter
from app.store.adapter_state import RedisAdapterState
from tests.utils.media_source import DictMedia

BASE = "https://api.pixelapi.dev"
JOB = "gen_123"


def _adapter(
    *credentials: Credential, limits: dict[str, UpstreamLimit] | None = None
) -> PixelApiAdapter:
    config = AdapterConfig(base_url=BASE, credentials=credentials, limits=limits or {})
    return PixelApiAdapter(httpx.AsyncClient(), config)


def test_each_credential_runs_at_its_plan_and_an_unsaid_plan_is_starter() -> None:
    adapter = _adapter(
        Credential(api_key="a", plan="pro"),
        Credential(api_key="b"),
        Credential(api_key="c", plan="scale"),
    )
    rates = [limit.rate_per_s for limit in adapter.credential_limits("default")]
    assert rates == [pytest.approx(60 / 60), pytest.approx(20 / 60), pytest.approx(200 / 60)]
    assert adapter.plans() == ["pro", "starter (assumed: no plan configured)", "scale"]


def test_a_configured_limit_over_the_pool_wins_over_the_plans() -> None:
    adapter = _adapter(
        Credential(api_key="a", plan="free"),
        limits={"default": UpstreamLimit(rate_per_s=10)},
    )
    assert adapter.credential_limits("default") == ()


def test_the_budget_gives_each_credential_its_own_rate() -> None:
    adapter = _adapter(Credential(api_key="a", plan="free"), Credential(api_key="b", plan="pro"))
    gate = UpstreamGate.__new__(UpstreamGate)
    record = type("R", (), {"job": type("J", (), {"operation": Operation.image_generate})()})()
    budget = gate.budget(adapter, record)
    assert budget is not None
    assert budget.credential_rates_per_s == (  # type: ignore[comparison-overlap]
        pytest.approx(5 / 60 * RATE_MARGIN),
        pytest.approx(60 / 60 * RATE_MARGIN),
    )
    assert budget.rate_per_s == pytest.approx(5 / 60 * RATE_MARGIN)


@pytest.fixture
async def stateful(redis_client: Redis) -> AsyncIterator[PixelApiAdapter]:
    async with httpx.AsyncClient() as client:
        config = AdapterConfig(base_url=BASE, credentials=(Credential(api_key="k"),))
        yield PixelApiAdapter(client, config, RedisAdapterState(redis_client, "pixelapi"))


async def test_a_job_stuck_in_queued_is_resubmitted_after_two_minutes(
    stateful: PixelApiAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000.0]
    monkeypatch.setattr(pixelapi.time, "time", lambda: now[0])  # type: ignore[attr-defined]
    call = Call("job_1", Operation.image_generate, GenerateImage(prompt="p"), DictMedia({}))
    with respx.mock(base_url=BASE) as upstream:
        upstream.get(f"/v1/image/{JOB}").respond(
            200, json={"generation_id": JOB, "status": "queued"}
        )
        assert isinstance(await stateful.poll(call, JOB), Progress)
        now[0] += pixelapi.QUEUED_PATIENCE_S
        assert isinstance(await stateful.poll(call, JOB), Progress)  # up to 2 minutes: wait
        now[0] += 1
        stuck = await stateful.poll(call, JOB)
    assert isinstance(stuck, Failed)
    assert (stuck.code, stuck.retryable, stuck.provider_code) == (
        ErrorCode.upstream_timeout,
        True,
        pixelapi.STUCK_IN_QUEUE,
    )


async def test_a_processing_job_is_never_stuck(
    stateful: PixelApiAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000.0]
    monkeypatch.setattr(pixelapi.time, "time", lambda: now[0])  # type: ignore[attr-defined]
    call = Call("job_1", Operation.image_generate, GenerateImage(prompt="p"), DictMedia({}))
    with respx.mock(base_url=BASE) as upstream:
        route = upstream.get(f"/v1/image/{JOB}")
        route.respond(200, json={"generation_id": JOB, "status": "processing"})
        for _ in range(3):
            assert isinstance(await stateful.poll(call, JOB), Progress)
            now[0] += pixelapi.QUEUED_PATIENCE_S
