"""CPU time the gateway spends per request, in process: steady on a shared, noisy machine.

``python -m bench.cpu`` builds the app (sandbox mode, its providers pointed at the mock
upstream of ``bench.servers``, an embedded Redis), runs its lifespan, and calls it as an ASGI
app N times in a row per scenario, measuring this process's CPU time (``time.process_time``):
the gateway's own cost per request, without the load generator, the upstream or Redis (those
run in other processes). Wall-clock throughput comes from ``make bench``; this is the figure
to compare when deciding whether a change pays. ``BENCH_CPU_N`` requests per scenario
(default 2000, in five rounds: the best round is reported), ``BENCH_ONLY`` (words of the
scenario names), ``BENCH_CPU_PROFILE=1`` adds the Python function calls per request
(exact, unlike time; CPU figures are then inflated by the profiler), ``=2`` a cProfile
summary too.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.run import free_port

N = int(os.environ.get("BENCH_CPU_N", "2000"))
ROUNDS = 5
"""The best of five rounds is reported: other work on the machine only ever adds."""
AUTH = (b"authorization", b"Bearer mg_test_sandbox")
GENERATE = json.dumps({"prompt": "a lighthouse at dusk", "provider": "imagepig"}).encode()

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def call(
    app: ASGI,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    query: bytes = b"",
) -> tuple[int, bytes]:
    """One request through the whole ASGI app, as uvicorn would make it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [
            (b"host", b"127.0.0.1"),
            *headers,
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    done = asyncio.Event()
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def warm(name: str, request: Callable[[], Awaitable[tuple[int, bytes]]]) -> None:
    """Fifty requests before measuring (caches, connections); each must succeed."""
    for _ in range(50):
        status, body = await request()
        if status >= 300:
            raise SystemExit(f"{name}: {status} {body[:300]!r}")


async def measure(
    name: str, app: ASGI, request: Callable[[], Awaitable[tuple[int, bytes]]]
) -> None:
    await warm(name, request)
    profile = cProfile.Profile() if os.environ.get("BENCH_CPU_PROFILE") else None
    if profile:
        profile.enable()
    rounds = []
    for _ in range(ROUNDS):
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(N // ROUNDS):
            await request()
        rounds.append((time.process_time() - cpu, time.perf_counter() - wall))
    if profile:
        profile.disable()
    each = N // ROUNDS
    best = min(c for c, _ in rounds) / each
    median = sorted(c for c, _ in rounds)[ROUNDS // 2] / each
    wall = min(w for _, w in rounds) / each
    print(
        f"{name:<40} {best * 1e6:6.0f} µs CPU/request (median {median * 1e6:5.0f}; "
        f"best wall {wall * 1e3:.2f} ms)",
        flush=True,
    )
    if profile:
        stats = pstats.Stats(profile)
        calls = stats.total_calls  # type: ignore[attr-defined]
        print(f"{'':<40} {calls / (each * ROUNDS):6.0f} Python function calls/request")
        if os.environ.get("BENCH_CPU_PROFILE") == "2":
            stats.sort_stats(os.environ.get("BENCH_CPU_SORT", "cumulative")).print_stats(45)
            callers = os.environ.get("BENCH_CPU_CALLERS")
            if callers:
                stats.print_callers(callers)


Measure = Callable[[str, ASGI, Callable[[], Awaitable[tuple[int, bytes]]]], Awaitable[None]]
"""How a scenario is measured: :func:`measure` here, or another tool's (``bench.phases``)."""


async def scenarios(app: ASGI, measured: Measure = measure) -> None:
    json_headers = [AUTH, (b"content-type", b"application/json")]
    status, body = await call(
        app, "POST", "/v1/images/generate", [*json_headers, (b"prefer", b"wait=30")], GENERATE
    )
    job = json.loads(body)
    if job.get("status") != "succeeded":
        raise SystemExit(f"the first job did not succeed: {status} {body[:500]!r}")
    only = {n for n in os.environ.get("BENCH_ONLY", "").split(",") if n}

    async def read() -> tuple[int, bytes]:
        return await call(app, "GET", f"/v1/jobs/{job['id']}", [AUTH])

    async def sync() -> tuple[int, bytes]:
        return await call(
            app, "POST", "/v1/images/generate", [*json_headers, (b"prefer", b"wait=30")], GENERATE
        )

    async def submit() -> tuple[int, bytes]:
        return await call(app, "POST", "/v1/images/generate", json_headers, GENERATE)

    artifact = httpx.URL(job["output"]["artifacts"][0]["url"])

    async def download() -> tuple[int, bytes]:
        return await call(app, "GET", artifact.path, [], query=artifact.query)

    for name, run in (
        ("GET /v1/jobs/{id}", read),
        ("POST generate + Prefer: wait (sync)", sync),
        ("POST generate -> 202 (async submit)", submit),
        ("GET artifact", download),
    ):
        if not only or any(o in name for o in only):
            await measured(name, app, run)
    name = "async job: 202 submit + its worker run"
    if not only or any(o in name for o in only):
        await measure_async_jobs(name, app, submit)


async def measure_async_jobs(
    name: str, app: Any, submit: Callable[[], Awaitable[tuple[int, bytes]]]
) -> None:
    """CPU per asynchronous job, all of it in this process: its 202 submission and the run
    of the job by the process's own worker (as ``mediagate serve`` does), N jobs submitted
    back to back, then the queue drained, per round."""
    from app.store import keys

    gateway = app.state.gateway
    redis = gateway.redis

    async def drained() -> None:
        while await redis.zcard(keys.DUE) + await redis.zcard(keys.LEASES):
            await asyncio.sleep(0.01)

    worker = asyncio.create_task(gateway.worker.run())
    try:
        for _ in range(20):
            await submit()
        await drained()
        each = N // ROUNDS // 2
        rounds = []
        for _ in range(ROUNDS):
            cpu = time.process_time()
            for _ in range(each):
                status, body = await submit()
                if status != 202:
                    raise SystemExit(f"{name}: {status} {body[:300]!r}")
            await drained()
            rounds.append(time.process_time() - cpu)
        best = min(rounds) / each
        median = sorted(rounds)[ROUNDS // 2] / each
        print(f"{name:<40} {best * 1e6:6.0f} µs CPU/job (median {median * 1e6:5.0f})", flush=True)
    finally:
        await gateway.worker.stop()
        await worker


def main(measured: Measure = measure) -> None:
    from app import logs
    from app.config import Settings
    from app.main import create_app
    from app.store.embedded import EmbeddedRedis

    logs.configure(os.environ.get("BENCH_LOG_LEVEL", "warning"))  # as make bench serves
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "bench.servers", "upstream", "--port", str(port)]
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with tempfile.TemporaryDirectory(prefix="mediagate-cpu-") as data_dir:
        redis = EmbeddedRedis(Path(data_dir))
        try:
            url = redis.start()
            settings = Settings(
                sandbox=True,
                sandbox_url=f"http://127.0.0.1:{port}",
                redis_url=url,
                data_dir=Path(data_dir),
                run_worker=False,
            )
            app = create_app(settings)

            async def run() -> None:
                import uvloop  # noqa: F401

                async with app.router.lifespan_context(app):
                    await scenarios(app, measured)

            import uvloop

            uvloop.run(run())
        finally:
            redis.stop()
            upstream.terminate()
            upstream.wait()


if __name__ == "__main__":
    main()
