"""Upstream plans: the documented limits, a configured plan over them, and the tasks a
credential may keep alive where the upstream drops a task that is not polled in time."""

from __future__ import annotations

import httpx
import pytest

from app.config import LimitSettings, ProviderSettings, Settings
from app.gateway import emulator_credentials
from app.jobs.gate import HEADROOM_REQUESTS, RATE_MARGIN
from app.providers.base import UpstreamLimit
from app.providers.perfectcorp import PerfectCorpAdapter
from app.providers.registry import adapter_config


def _adapter(provider: ProviderSettings) -> PerfectCorpAdapter:
    config = adapter_config("perfectcorp", provider, Settings(sandbox=True), emulator_credentials)
    return PerfectCorpAdapter(httpx.AsyncClient(), config)


def test_the_documented_limit_applies_without_a_plan() -> None:
    assert (
        _adapter(ProviderSettings()).upstream_limit("default")
        == (PerfectCorpAdapter.limits["default"])
    )


def test_a_configured_plan_replaces_only_what_it_sets() -> None:
    plan = ProviderSettings(limits={"default": LimitSettings(requests_per_minute=6000)})
    limit = _adapter(plan).upstream_limit("default")
    assert limit == UpstreamLimit(rate_per_s=100.0, requests_per_submit=2, poll_wait_s=5.0)


def test_a_plan_naming_an_unknown_limit_is_refused_at_start() -> None:
    plan = ProviderSettings(limits={"tts": LimitSettings(concurrent_jobs=2)})
    with pytest.raises(
        ValueError, match=r"no limit named tts \(the perfectcorp adapter has: default, egress\)"
    ):
        _adapter(plan)


def test_perfect_on_its_documented_plan_keeps_three_tasks_per_token_alive() -> None:
    limit = PerfectCorpAdapter.limits["default"]
    assert limit.rate_per_s is not None
    # 100/min × 0.8 = 1.33 req/s; 5 s of queue holds 6.7 requests, 3 two-request submissions
    assert limit.jobs_at_once(limit.rate_per_s * RATE_MARGIN) == 3


def test_perfect_per_ip_limit_runs_one_task_at_a_time_per_address() -> None:
    """ "Each IP address … 100 requests per 5 minutes": every request from the address counts,
    so on the documented numbers the gateway spends 97 of each 300 s (3 left for sign-ins and
    lateness) and keeps one task polled at a time."""
    egress = PerfectCorpAdapter.limits["egress"]
    assert PerfectCorpAdapter.egress_limit == "egress"
    assert (egress.rate_per_s, egress.window_s) == (100 / 300, 300.0)
    rate = egress.usable_rate(RATE_MARGIN, HEADROOM_REQUESTS)
    assert rate == pytest.approx(97 / 300)
    assert egress.jobs_at_once(rate) == 1


def test_an_egress_contract_raises_the_per_ip_limit() -> None:
    plan = ProviderSettings(limits={"egress": LimitSettings(requests_per_minute=60_000)})
    egress = _adapter(plan).upstream_limit("egress")
    assert egress is not None and egress.window_s == 300.0
    rate = egress.usable_rate(RATE_MARGIN, HEADROOM_REQUESTS)
    assert rate == pytest.approx(1000 - 3 / 300)
    assert egress.jobs_at_once(rate) == 2499


def test_a_short_window_keeps_the_rate_margin() -> None:
    limit = UpstreamLimit(rate_per_s=1000)
    assert limit.usable_rate(RATE_MARGIN, HEADROOM_REQUESTS) == 800


def test_kept_alive_tasks_grow_with_the_plan_and_respect_a_declared_cap() -> None:
    limit = UpstreamLimit(rate_per_s=1000 / 60, requests_per_submit=2, poll_wait_s=5.0)
    assert limit.jobs_at_once(1000 / 60 * RATE_MARGIN) == 33
    capped = UpstreamLimit(rate_per_s=100, concurrent_jobs=10, requests_per_submit=2, poll_wait_s=5)
    assert capped.jobs_at_once(80) == 10
    # a slow plan still runs one task at a time rather than none
    slow = UpstreamLimit(rate_per_s=0.01, requests_per_submit=2, poll_wait_s=5)
    assert slow.jobs_at_once(0.008) == 1


def test_without_a_liveness_rule_the_declared_concurrency_stands() -> None:
    assert UpstreamLimit(rate_per_s=30, concurrent_jobs=1).jobs_at_once(24) == 1
    assert UpstreamLimit(rate_per_s=30).jobs_at_once(24) is None
