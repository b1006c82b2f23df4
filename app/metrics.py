"""Every Prometheus metric, defined once against a registry that is passed in.

Labels stay bounded: route templates, operation and provider names, statuses — never a
tenant id, a job id or a raw path.

**Several processes.** ``mediagate serve --processes N`` runs N server processes; each counts
what it serves. :func:`multiprocess_metrics` (entered by ``serve`` before the processes start)
points ``PROMETHEUS_MULTIPROC_DIR`` at a directory that is empty at the start of every run, so
``prometheus_client`` keeps every value in a memory-mapped file there, and :func:`exposition`
merges all of them into one answer whichever process is scraped. Each gauge says how the
processes' values combine (``multiprocess_mode``); the live-only modes forget a process that
died (:func:`exposition` notices dead processes). One process alone keeps its values in memory.

**Workers.** ``mediagate worker`` serves its own registry on its own port
(:func:`serve_worker_http`: ``/metrics``, ``/healthz``, ``/readyz``), default 9100.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from app.domain.models import Job
from app.domain.operations import Operation
from app.providers.base import Failed, PollTrouble, Progress, Submitted, Succeeded

if TYPE_CHECKING:
    from app.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
RATE_LIMIT_SCOPES = ("tenant", "upstream", "upstream_late")
"""``mediagate_rate_limited_total{scope}``: a tenant's request limit, a provider's budget, a
request that missed its turn in that budget and took a new one."""

_M = TypeVar("_M", Counter, Gauge, Histogram)
_T = TypeVar("_T")

_CHILDREN_KEPT = 1024
"""Label sets :class:`_Children` keeps per metric; past it, the rest are looked up each time."""


class _Children(Generic[_T]):
    """What ``metric.labels(*values)`` returns, looked up once per label set: of one metric
    (:meth:`of`), or of the few metrics an event counts in at once, found by one look-up
    (``make`` returns them together).

    ``labels()`` takes the metric's lock, checks and converts every value and builds its key
    on every call, a few microseconds each, and a synchronous request makes about ten. The
    child it returns is the one the metric keeps for as long as it lives (nothing removes or
    clears children), and with several processes the child's value keeps its own place in the
    process's file (``MmapedValue`` re-opens it after a fork), so keeping the child is safe.

    Values are plain strings (an enum's ``.value``), so a key here names the same label set
    as the string ``labels()`` makes of it. The label sets are bounded already (route
    templates, names, statuses); :data:`_CHILDREN_KEPT` bounds this dict whatever comes in.
    """

    __slots__ = ("_make", "_kept")

    def __init__(self, make: Callable[..., _T]) -> None:
        self._make = make
        self._kept: dict[tuple[str, ...], _T] = {}

    @staticmethod
    def of(metric: _M) -> _Children[_M]:
        return _Children(cast("Callable[..., _M]", metric.labels))

    def __call__(self, *values: str) -> _T:
        children = self._kept.get(values)
        if children is None:
            children = self._make(*values)
            if len(self._kept) < _CHILDREN_KEPT:
                self._kept[values] = children
        return children


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
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "mediagate_queue_depth",
            "Jobs waiting in the due-queue.",
            multiprocess_mode="mostrecent",
            registry=registry,
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
        self.upstream_spend = Counter(
            "mediagate_upstream_spend_total",
            "What upstream tasks cost the providers' accounts, in gateway credits (≈ $0.001).",
            ["provider"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "mediagate_cache_lookups_total",
            "Result-cache lookups at submission, by result (hit or miss).",
            ["operation", "result"],
            registry=registry,
        )
        self.cache_upstream_saved = Counter(
            "mediagate_cache_upstream_saved_total",
            "Upstream spend a result served from the cache saved (what its first run cost).",
            ["operation"],
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
            "Circuit breaker: 0 closed, 1 half-open, 2 open (set it; never inc/dec).",
            ["provider"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self.fallbacks = Counter(
            "mediagate_fallbacks_total",
            "Jobs moved to the next provider.",
            ["operation", "from", "to"],
            registry=registry,
        )
        self.redis_up = Gauge(
            "mediagate_redis_up",
            "1 if the store answered this process's last check, else 0.",
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.upstream_callbacks = Counter(
            "mediagate_upstream_callbacks_total",
            "Callbacks received from upstreams (expedited, ignored, rejected, too_large).",
            ["provider", "outcome"],
            registry=registry,
        )
        self.storage_reclaimed = Counter(
            "mediagate_storage_reclaimed_bytes_total",
            "Bytes of files and outputs deleted after their retention ended.",
            registry=registry,
        )

        self.providers: list[str] = []
        """The providers :meth:`prime` saw."""

        # The children the request path touches on every request (:class:`_Children`), those
        # of one event together.
        self._http = _Children(
            lambda route, method, status: (
                self.http_requests.labels(route, method, status),
                self.http_duration.labels(route, method),
            )
        )
        self._job_end = _Children(self._job_end_children)
        self._upstream = _Children(
            lambda provider, endpoint, outcome: (
                self.upstream_requests.labels(provider, endpoint, outcome),
                self.upstream_duration.labels(provider, endpoint),
            )
        )
        self._upstream_spend = _Children.of(self.upstream_spend)
        self._circuit_state = _Children.of(self.circuit_state)

    def prime(self, providers: ProviderRegistry) -> None:
        """Create, at their neutral value, the bounded series that may stay quiet for long.

        A series that was never touched reads as "no data" on a dashboard and can't trip an
        alert; these exist from the first scrape on: every provider's circuit (closed) and jobs
        in flight, every rate-limit scope, every fallback step of the configured routing, the
        result cache's hits, misses and savings per operation.
        """
        if self.providers:
            return
        for provider in providers:
            self.circuit_state.labels(provider)
            self.jobs_in_flight.labels(provider)
            self.upstream_spend.labels(provider)
        for scope in RATE_LIMIT_SCOPES:
            self.rate_limited.labels(scope)
        for operation in Operation:
            self.cache_upstream_saved.labels(operation.value)
            for result in ("hit", "miss"):
                self.cache_lookups.labels(operation.value, result)
        for operation in Operation:
            chain = list(providers.bindings(operation))
            for previous, following in zip(chain, chain[1:], strict=False):
                self.fallbacks.labels(operation.value, previous, following)
        self.providers = list(providers)

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request; ``route`` is its template (or ``unmatched``), never its path."""
        requests, duration = self._http(route, method, str(status))
        requests.inc()
        duration.observe(seconds)

    def upstream_request(
        self,
        provider: str,
        endpoint: str,
        result: Submitted | Progress | Succeeded | Failed | PollTrouble,
        seconds: float,
    ) -> None:
        if isinstance(result, Failed):
            outcome = result.code.value
        elif isinstance(result, PollTrouble):
            outcome = "unread"
        else:
            outcome = "ok"
        requests, duration = self._upstream(provider, endpoint, outcome)
        requests.inc()
        duration.observe(seconds)

    def circuit(self, provider: str, state: str) -> None:
        self._circuit_state(provider).set(CIRCUIT_STATES[state])

    def fallback(self, operation: str, from_provider: str, to_provider: str) -> None:
        self.fallbacks.labels(operation, from_provider, to_provider).inc()

    def upstream_callback(self, provider: str, outcome: str) -> None:
        """One inbound callback; ``provider`` is already bounded (``UpstreamCallbacks.label``)."""
        self.upstream_callbacks.labels(provider, outcome).inc()

    def cache_lookup(self, operation: str, *, hit: bool) -> None:
        self.cache_lookups.labels(operation, "hit" if hit else "miss").inc()

    def cache_saved(self, operation: str, upstream_cost: float) -> None:
        self.cache_upstream_saved.labels(operation).inc(upstream_cost)

    def _job_end_children(
        self, operation: str, provider: str, status: str, ended: str, charged: str
    ) -> tuple[Counter, Histogram | None, Counter | None]:
        """A job's end counts in up to three series; a series is made (and shown) only once
        a job counts in it, so the duration's and the charge's children are looked up only
        for a job that has them."""
        return (
            self.jobs.labels(operation, provider, status),
            self.job_duration.labels(operation, provider) if ended else None,
            self.credits_charged.labels(operation, provider) if charged else None,
        )

    def job_finished(self, job: Job) -> None:
        ended, charged = job.completed_at, job.credits.charged
        jobs, duration, charges = self._job_end(
            job.operation.value,
            job.provider or "none",
            job.status.value,
            "ended" if ended is not None else "",
            "charged" if charged else "",
        )
        jobs.inc()
        if duration is not None and ended is not None:
            duration.observe((ended - job.created_at).total_seconds())
        if charges is not None:
            charges.inc(charged)
        for attempt in job.attempts:
            if attempt.upstream_cost:
                self._upstream_spend(attempt.provider).inc(attempt.upstream_cost)


def exposition(metrics: Metrics) -> bytes:
    """The text a scrape gets: every process's values when they share a directory."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory or values.ValueClass is values.MutexValue:
        return generate_latest(metrics.registry)  # one process, values in its memory
    _forget_dead_processes(Path(directory))
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(_Families(_closed_unless_seen(merged.collect(), metrics.providers)))


def _closed_unless_seen(families: Iterable[Metric], providers: Iterable[str]) -> list[Metric]:
    """A circuit no process has reported on yet is closed.

    ``mediagate_circuit_state`` takes the most recently set value across processes; a value
    only primed (never set) carries no time and is left out of the merge, so a provider nobody
    has called yet would read as "no data" instead of closed.
    """
    out = list(families)
    for family in out:
        if family.name == "mediagate_circuit_state":
            seen = {sample.labels.get("provider") for sample in family.samples}
            for provider in providers:
                if provider not in seen:
                    family.add_sample(family.name, {"provider": provider}, CIRCUIT_STATES["closed"])
    return out


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _forget_dead_processes(directory: Path) -> None:
    """Drop the live-only gauges of processes that are gone (what ``mark_process_dead`` does).

    The server processes are restarted by their supervisor without telling anyone; a scrape
    is the moment their leftovers matter, so the check is made here.
    """
    for path in directory.glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def multiprocess_metrics(processes: int) -> Iterator[Path | None]:
    """Prepare the shared directory for the server processes ``serve`` is about to start.

    Entered before any of them starts (each reads ``PROMETHEUS_MULTIPROC_DIR`` when it imports
    ``prometheus_client``). A configured directory is emptied of the previous run's files (they
    would be counted again); without one, a private directory is made and removed at the end.
    One process alone with no directory configured needs none.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    if processes <= 1:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="mediagate-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)
