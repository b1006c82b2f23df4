"""What a job costs in Redis and in process memory, counted on the live servers.

- Round trips per job of each kind: Redis ``MONITOR`` while N jobs run one after another;
  commands sent by clients are counted (a ``MULTI … EXEC`` block as one round trip),
  commands run inside Lua scripts are not. ``MONITOR`` shows a pipeline's commands one by
  one, so beside it the client reads Redis processed (``INFO stats``
  ``total_reads_processed``: a pipeline arrives in one read) are counted too.
  ``INFO commandstats`` gives the commands executed (script-internal ones included). The
  workers' idle polling over the same time is measured first and subtracted.
- Bytes per finished job: ``INFO memory`` ``used_memory`` before and after many synchronous
  jobs, divided by the jobs created (the tenant's job index, ``ZCARD``); ``MEMORY USAGE`` of
  one finished job's keys beside it.
- RSS of the gateway processes at 10k finished jobs and again at ``BENCH_RSS_JOBS``
  (default 100k, as the target; fewer for a quicker run).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.store import keys
from bench.core import Context, scenario
from bench.gateway_paths import drain, generate, probe_job
from bench.wrk import wrk

JOBS_PER_KIND = 30
TENANT_JOBS = keys.tenant_jobs("sandbox")


@dataclass
class Count:
    round_trips: float
    scripts: float
    executed: float
    reads: float = 0.0


class Monitor:
    """Redis MONITOR on its own connection, in a thread: client commands and script calls."""

    def __init__(self, unix_path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(unix_path)
        self.sock.sendall(b"MONITOR\r\n")
        self.sock.settimeout(0.2)
        self.round_trips = 0
        self.scripts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        pending = b""
        in_multi = False
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            pending += data
            *lines, pending = pending.split(b"\r\n")
            for line in lines:
                if not line.startswith(b"+") or b"] " not in line or line == b"+OK":
                    continue
                source, _, command = line.partition(b"] ")
                if source.endswith(b" lua"):
                    continue
                name = command.split(b" ", 1)[0].strip(b'"').lower()
                if name == b"monitor":
                    continue
                if name in (b"evalsha", b"eval", b"fcall"):
                    self.scripts += 1
                if name == b"multi":
                    in_multi = True
                    self.round_trips += 1
                elif name == b"exec":
                    in_multi = False
                elif not in_multi:
                    self.round_trips += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def _executed(ctx: Context) -> int:
    stats = ctx.redis.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values() if isinstance(v, dict))


def _reads(ctx: Context) -> int:
    return int(ctx.redis.info("stats")["total_reads_processed"])


def _count(ctx: Context, unix_path: str, run: Callable[[], None], jobs: int, idle: Count) -> Count:
    reads = _reads(ctx)
    executed = _executed(ctx)
    monitor = Monitor(unix_path)
    time.sleep(0.3)
    started = time.monotonic()
    run()
    elapsed = time.monotonic() - started
    time.sleep(0.3)
    monitor.close()
    total = _executed(ctx) - executed - 1  # the INFO itself
    # this function's own: INFO commandstats twice, MONITOR, the last INFO stats
    read = _reads(ctx) - reads - 4
    seconds = elapsed + 0.6
    return Count(
        (monitor.round_trips - idle.round_trips * seconds) / jobs,
        (monitor.scripts - idle.scripts * seconds) / jobs,
        (total - idle.executed * seconds) / jobs,
        (read - idle.reads * seconds) / jobs,
    )


@scenario
def redis_round_trips(ctx: Context) -> None:
    path = ctx.redis.connection_pool.connection_kwargs["path"]
    idle = _count(ctx, path, lambda: time.sleep(3), 1, Count(0, 0, 0))
    idle = Count(idle.round_trips / 3.6, idle.scripts / 3.6, idle.executed / 3.6, idle.reads / 3.6)
    client = httpx.Client(timeout=30)
    sync_request = generate(ctx, wait=True)
    async_request = generate(ctx, wait=False)
    job_id = str(probe_job(ctx)["id"])

    def run_sync() -> None:
        for _ in range(JOBS_PER_KIND):
            client.post(sync_request.url, content=sync_request.body, headers=sync_request.headers)

    def run_async() -> None:
        for _ in range(JOBS_PER_KIND):
            client.post(
                async_request.url, content=async_request.body, headers=async_request.headers
            )
        drain(ctx.redis)

    def run_get() -> None:
        for _ in range(JOBS_PER_KIND):
            client.get(f"{ctx.gateway}/v1/jobs/{job_id}", headers=ctx.auth)

    ctx.note(f"idle workers: {idle.round_trips:.1f} round trips/s (subtracted below)")
    for kind, run in (
        ("sync job (Prefer: wait)", run_sync),
        ("async job (202, then the worker)", run_async),
        ("GET /v1/jobs/{id}", run_get),
    ):
        count = _count(ctx, path, run, JOBS_PER_KIND, idle)
        ctx.note(
            f"redis per {kind:<34} {count.round_trips:5.1f} commands sent "
            f"({count.scripts:.1f} scripts) in {count.reads:4.1f} round trips, "
            f"{count.executed:5.1f} commands executed"
        )
    client.close()


@scenario
def redis_bytes_and_rss(ctx: Context) -> None:
    marks = [10_000, int(os.environ.get("BENCH_RSS_JOBS", "100000"))]
    request = generate(ctx, wait=True)
    drain(ctx.redis)
    before_jobs = ctx.redis.zcard(TENANT_JOBS)
    before_bytes = int(ctx.redis.info("memory")["used_memory"])
    before_keys = ctx.redis.dbsize()
    rss: dict[int, int] = {}
    seen: dict[int, int] = {}  # the jobs there were at each reading (earlier scenarios make some)
    while len(rss) < len(marks):
        jobs = ctx.redis.zcard(TENANT_JOBS)
        for mark in marks:
            if jobs >= mark and mark not in rss:
                rss[mark], seen[mark] = _rss(ctx.gateway_pids()), jobs
                ctx.note(f"  {jobs} jobs: gateway RSS {rss[mark] / 2**20:.1f} MiB")
        if len(rss) < len(marks):
            wrk(request, 16, 5, warmup_s=0)
    jobs = ctx.redis.zcard(TENANT_JOBS) - before_jobs
    used = int(ctx.redis.info("memory")["used_memory"]) - before_bytes
    new_keys = ctx.redis.dbsize() - before_keys
    per_job = used / jobs
    ctx.note(
        f"redis per finished job: {per_job:,.0f} bytes (used_memory over {jobs} jobs), "
        f"{new_keys / jobs:.2f} keys"
    )
    job = probe_job(ctx)
    usage = {
        key: ctx.redis.memory_usage(key) or 0 for key in ctx.redis.scan_iter(match=f"*{job['id']}*")
    }
    output = job["output"]
    assert isinstance(output, dict)
    for artifact in output["artifacts"]:
        key = keys.artifact(artifact["id"])
        usage[key] = ctx.redis.memory_usage(key) or 0
    shown = ", ".join(f"{k} {v} B" for k, v in usage.items())
    ctx.note(f"  MEMORY USAGE of one finished job's keys: {shown}")
    ctx.target("<= 4 KB Redis per finished job", per_job <= 4096, f"{per_job:,.0f} B")
    low, high = rss[marks[0]], rss[marks[1]]
    growth = high / low - 1
    ctx.target(
        f"RSS flat (+-5 %) from {seen[marks[0]] / 1000:.0f}k to {seen[marks[1]] / 1000:.0f}k jobs",
        abs(growth) <= 0.05,
        f"{growth:+.1%}",
    )


def _rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total
