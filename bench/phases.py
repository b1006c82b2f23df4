"""Where a synchronous request's CPU goes, by the gateway's own functions.

``python -m bench.phases`` (``make bench-phases``) runs ``bench.cpu``'s synchronous scenario
(generate + ``Prefer: wait`` against the mock upstream, in process) with a timer around each
function in ``PHASES``, and prints, per request, the CPU time spent inside each (this
thread's, from entering to leaving it: inclusive, so a phase contains those it calls) and how
often it ran. Requests run one at a time, so the time a coroutine spends awaiting is almost
all waiting, which the thread's CPU clock does not count.

A sampling profiler is unreliable here: py-spy put 26 % of a served process's samples in
the ``open`` of a blob's file, which this clock measures at 40-70 µs of some 2,500. cProfile
inflates every Python call; this times only the functions listed. ``BENCH_CPU_N`` requests
(default 600). A phase whose function is renamed or moved fails the run, so the list is
kept honest.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import bench.cpu

N = int(os.environ.get("BENCH_CPU_N", "600"))
PHASES: list[tuple[str, str]] = [
    ("app.api.fast_routes", "FastRoutes._create_job"),
    ("app.api.fast_routes", "_json_body"),
    ("app.api.fast_routes", "active_caller"),
    ("app.api.routes.operations", "submit_job"),
    ("app.jobs.service", "JobService.submit"),
    ("app.jobs.service", "check_metadata"),
    ("app.jobs.service", "measure_request"),
    ("app.jobs.accounting", "Accounting.quote"),
    ("app.jobs.service", "JobService._create"),
    ("app.store.jobs", "JobStore.create"),
    ("app.jobs.service", "JobService._run_inline"),
    ("app.jobs.runner", "JobRunner.step"),
    ("app.jobs.runner", "JobRunner._call_upstream"),
    ("app.providers.imagepig", "ImagePigAdapter.submit"),
    ("app.upstream_http", "UpstreamClient.build_request"),
    ("app.upstream_http", "UpstreamClient.send"),
    ("app.jobs.outputs", "Outputs.store"),
    ("app.jobs.outputs", "_image_size"),
    ("app.jobs.storage", "Storage._store"),
    ("app.store.storage", "StorageLedger.reserve"),
    ("app.blobs.local", "LocalBlobStore.put"),
    ("app.jobs.lifecycle", "Lifecycle.succeed"),
    ("app.store.jobs", "JobStore.save"),
    ("app.jobs.accounting", "Accounting.charge_for"),
    ("app.metrics", "Metrics.job_finished"),
    ("app.jobs.reads", "JobReads.render"),
    ("app.store.scripts", "Script.__call__"),
]

spent: dict[str, float] = defaultdict(float)
calls: Counter[str] = Counter()


def _timed(module: str, qualname: str) -> None:
    """Replace ``module.qualname`` by the same function timed (see the module docstring)."""
    owner: Any = importlib.import_module(module)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    label = f"{module.rpartition('.')[2]}.{qualname}"
    wrapped: Callable[..., Any]
    if asyncio.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return await original(*args, **kwargs)
            finally:
                spent[label] += time.thread_time() - started
                calls[label] += 1

    else:

        @functools.wraps(original)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.thread_time() - started
                calls[label] += 1

    setattr(owner, name, wrapped)


async def _measure(
    name: str, app: bench.cpu.ASGI, request: Callable[[], Awaitable[tuple[int, bytes]]]
) -> None:
    await bench.cpu.warm(name, request)
    spent.clear()
    calls.clear()
    started = time.thread_time()
    for _ in range(N):
        await request()
    total = time.thread_time() - started
    print(f"{name}: {total / N * 1e6:.0f} µs CPU per request, timers included ({N} requests)")
    print(f"{'µs':>8} {'calls':>6}  phase (inclusive)")
    for label, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"{seconds / N * 1e6:8.0f} {calls[label] / N:6.1f}  {label}")


def main() -> None:
    os.environ["BENCH_ONLY"] = "wait"
    for module, qualname in PHASES:
        _timed(module, qualname)
    bench.cpu.main(_measure)


if __name__ == "__main__":
    main()
