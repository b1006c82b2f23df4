"""Every Prometheus metric, defined once against a registry that is passed in.

Labels stay bounded: route templates, operation and provider names, statuses — never a
tenant id, a job id or a raw path.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.jobs.models import Job
from app.providers.base import Failed, Progress, Submitted, Succeeded

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.http_requests = Counter(
            "mediagate_http_requests_total",
            "HTTP requests answered.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "mediagate_http_request_duration_seconds",
            "HTTP request latency.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.jobs = Counter(
            "mediagate_jobs_total",
            "Jobs finished, by final status.",
            ["operation", "provider", "status"],
            registry=registry,
        )
        self.job_duration = Histogram(
            "mediagate_job_duration_seconds",
            "Time from creation to a terminal status.",
            ["operation", "provider"],
            buckets=_JOB_BUCKETS,
            registry=registry,
        )
        self.jobs_in_flight = Gauge(
            "mediagate_jobs_in_flight",
            "Jobs a worker of this process is advancing.",
            ["provider"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "mediagate_queue_depth", "Jobs waiting in the due-queue.", registry=registry
        )
        self.upstream_requests = Counter(
            "mediagate_upstream_requests_total",
            "Calls to upstream providers, by outcome.",
            ["provider", "endpoint", "outcome"],
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "mediagate_upstream_request_duration_seconds",
            "Upstream call latency.",
            ["provider", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.credits_charged = Counter(
            "mediagate_credits_charged_total",
            "Credits charged to tenants.",
            ["operation", "provider"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "mediagate_rate_limited_total",
            "Requests refused or delayed by a limit.",
            ["scope"],
            registry=registry,
        )
        self.circuit_state = Gauge(
            "mediagate_circuit_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["provider"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "mediagate_fallbacks_total",
            "Jobs moved to the next provider.",
            ["operation", "from", "to"],
            registry=registry,
        )

    def upstream_request(
        self,
        provider: str,
        endpoint: str,
        result: Submitted | Progress | Succeeded | Failed,
        seconds: float,
    ) -> None:
        outcome = result.code.value if isinstance(result, Failed) else "ok"
        self.upstream_requests.labels(provider, endpoint, outcome).inc()
        self.upstream_duration.labels(provider, endpoint).observe(seconds)

    def fallback(self, operation: str, from_provider: str, to_provider: str) -> None:
        self.fallbacks.labels(operation, from_provider, to_provider).inc()

    def job_finished(self, job: Job) -> None:
        provider = job.provider or "none"
        operation = job.operation.value
        self.jobs.labels(operation, provider, job.status.value).inc()
        if job.completed_at is not None:
            seconds = (job.completed_at - job.created_at).total_seconds()
            self.job_duration.labels(operation, provider).observe(seconds)
        if job.credits.charged:
            self.credits_charged.labels(operation, provider).inc(job.credits.charged)
