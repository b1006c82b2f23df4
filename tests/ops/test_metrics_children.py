"""Every event the request path reports is counted once, on its own label set, whether its
children are kept or looked up each time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from app import metrics as metrics_module
from app.domain.errors import ErrorCode
from app.domain.models import Attempt, Credits, Job, JobLinks, JobStatus, utcnow
from app.domain.operations import Operation
from app.metrics import Metrics
from app.providers.base import Failed, PollTrouble, Submitted, Succeeded


def _job(status: JobStatus, provider: str, charged: int, cost: float) -> Job:
    created = utcnow()
    return Job(
        id="job_1",
        operation=Operation.image_generate,
        status=status,
        provider=provider,
        attempts=[Attempt(provider=provider, upstream_cost=cost)],
        input={"prompt": "x"},
        credits=Credits(reserved=charged, charged=charged),
        created_at=created,
        completed_at=created + timedelta(seconds=2),
        links=JobLinks(self="s", cancel="c", events="e"),
    )


def _report(metrics: Metrics) -> None:
    for _ in range(3):
        metrics.http_request("/v1/images/generate", "POST", 200, 0.02)
    metrics.http_request("/v1/images/generate", "POST", 429, 0.001)
    metrics.http_request("unmatched", "GET", 404, 0.001)
    for _ in range(2):
        metrics.upstream_request("alpha", "submit", Submitted("t1"), 0.01)
        metrics.upstream_request("alpha", "poll", Succeeded(), 0.01)
    metrics.upstream_request("beta", "poll", PollTrouble("429"), 0.01)
    metrics.upstream_request("beta", "submit", Failed(ErrorCode.upstream_timeout, "slow"), 0.01)
    for state in ("closed", "open", "half_open"):
        metrics.circuit("alpha", state)
    metrics.circuit("beta", "open")
    for _ in range(2):
        metrics.job_finished(_job(JobStatus.succeeded, "alpha", charged=5, cost=1.5))
    metrics.job_finished(_job(JobStatus.failed, "beta", charged=0, cost=0))
    unended = _job(JobStatus.canceled, "gamma", charged=0, cost=0)
    unended.completed_at = None
    metrics.job_finished(unended)
    metrics.job_finished(_job(JobStatus.canceled, "gamma", charged=4, cost=0))


@pytest.mark.parametrize("kept", [1024, 1, 0])
def test_each_event_is_counted_once_on_its_labels(
    kept: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_module, "_CHILDREN_KEPT", kept)
    registry = CollectorRegistry()
    _report(Metrics(registry))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    requests = "mediagate_http_requests_total"
    assert value(requests, route="/v1/images/generate", method="POST", status="200") == 3
    assert value(requests, route="/v1/images/generate", method="POST", status="429") == 1
    assert value(requests, route="unmatched", method="GET", status="404") == 1
    duration = "mediagate_http_request_duration_seconds_count"
    assert value(duration, route="/v1/images/generate", method="POST") == 4
    assert value(duration, route="unmatched", method="GET") == 1

    upstream = "mediagate_upstream_requests_total"
    assert value(upstream, provider="alpha", endpoint="submit", outcome="ok") == 2
    assert value(upstream, provider="alpha", endpoint="poll", outcome="ok") == 2
    assert value(upstream, provider="beta", endpoint="poll", outcome="unread") == 1
    assert value(upstream, provider="beta", endpoint="submit", outcome="upstream_timeout") == 1
    upstream_duration = "mediagate_upstream_request_duration_seconds_count"
    assert value(upstream_duration, provider="alpha", endpoint="submit") == 2
    assert value(upstream_duration, provider="beta", endpoint="submit") == 1

    assert value("mediagate_circuit_state", provider="alpha") == 1  # half-open, set last
    assert value("mediagate_circuit_state", provider="beta") == 2

    operation = Operation.image_generate.value
    jobs = "mediagate_jobs_total"
    assert value(jobs, operation=operation, provider="alpha", status="succeeded") == 2
    assert value(jobs, operation=operation, provider="beta", status="failed") == 1
    job_duration = "mediagate_job_duration_seconds"
    assert value(f"{job_duration}_count", operation=operation, provider="alpha") == 2
    assert value(f"{job_duration}_sum", operation=operation, provider="alpha") == 4
    charged = "mediagate_credits_charged_total"
    assert value(charged, operation=operation, provider="alpha") == 10
    assert value(charged, operation=operation, provider="beta") is None  # nothing charged
    # a series is shown once a job counts in it: gamma's first job had no end time and no charge
    assert value(jobs, operation=operation, provider="gamma", status="canceled") == 2
    assert value(f"{job_duration}_count", operation=operation, provider="gamma") == 1
    assert value(charged, operation=operation, provider="gamma") == 4
    assert value("mediagate_upstream_spend_total", provider="alpha") == 3
    assert value("mediagate_upstream_spend_total", provider="beta") is None  # cost 0
