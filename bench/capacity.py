"""What one job costs Redis: commands, CPU and bytes, per kind of job (docs/capacity.md).

Starts a private ``redis-server`` (AOF ``everysec``, as deployed), ``mediagate sandbox`` and
``mediagate serve`` (one process, its worker inside) on free ports. For each kind of job it
runs ``BENCH_CAPACITY_JOBS`` jobs (default 200) and reads from Redis itself:

- ``INFO commandstats`` before and after: calls per job by command (commands that scripts
  run count too, so ``evalsha`` is a round trip and the rest are mostly inside scripts);
- ``INFO cpu``: the server's CPU seconds per job, hence the job rate that keeps one
  primary at 50 % of a core;
- ``INFO memory`` and ``MEMORY USAGE`` of every key: bytes retained per finished job, by
  key family.

The background cost of an idle gateway and worker (claim loop, heartbeats) is measured first
over the same span and subtracted. ``python -m bench.capacity``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from app.store.embedded import redis_server_binary
from tests.utils.media import png_b64
from tests.utils.net import free_port

JOBS = int(os.environ.get("BENCH_CAPACITY_JOBS", "200"))
CONCURRENCY = 8
TENANT_KEY = "mg_test_sandbox"
SANDBOX_JOB_S = 1.0
POLL_S = 0.5


@dataclass(frozen=True)
class Kind:
    name: str
    route: str
    body: dict[str, Any]
    wait: bool


KINDS = [
    Kind(
        "synchronous upstream, Prefer: wait (Image Pig)",
        "/v1/images/remove-background",
        {"provider": "imagepig", "fallback": False},
        wait=True,
    ),
    Kind(
        "synchronous upstream, queued (Image Pig)",
        "/v1/images/remove-background",
        {"provider": "imagepig", "fallback": False},
        wait=False,
    ),
    Kind(
        f"asynchronous upstream, {SANDBOX_JOB_S:g} s polled every {POLL_S:g} s (PixelAPI)",
        "/v1/images/remove-background",
        {"provider": "pixelapi", "fallback": False},
        wait=False,
    ),
]


@dataclass
class Snapshot:
    calls: Counter[str]
    cpu_s: float
    used_memory: int
    at: float

    @classmethod
    def take(cls, r: redis.Redis) -> Snapshot:
        stats = r.info("commandstats")
        calls: Counter[str] = Counter(
            {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        )
        cpu = r.info("cpu")
        memory = r.info("memory")
        return cls(
            calls,
            float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            int(memory["used_memory"]),
            time.monotonic(),
        )


@contextmanager
def started(args: list[str], env: dict[str, str], health: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if health.startswith("redis"):
                    redis.Redis.from_url(health).ping()
                else:
                    httpx.get(health, timeout=1)
                break
            except (httpx.TransportError, redis.RedisError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{args[:3]} did not start") from None
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


async def run_kind(client: httpx.AsyncClient, kind: Kind, r: redis.Redis) -> int:
    """Submit the jobs and wait until every one is finished; the ZCARDs this issues."""
    gate = asyncio.Semaphore(CONCURRENCY)
    image = png_b64(48, 40)

    async def one() -> None:
        headers = {"Prefer": "wait=30"} if kind.wait else {}
        async with gate:
            answer = await client.post(
                kind.route, json={"image": {"data": image}, **kind.body}, headers=headers
            )
        assert answer.status_code in (200, 202), answer.text

    await asyncio.gather(*(one() for _ in range(JOBS)))
    own = 0
    while True:  # finished when nothing is due and nothing leased (no job may be left)
        own += 2
        if r.zcard("mg:due") == 0 and r.zcard("mg:leases") == 0:
            return own
        await asyncio.sleep(0.5)


def key_family(key: str) -> str:
    family = re.sub(r"(job|file|art|evt|whk)_[0-9a-f]{20,}", r"\1_<id>", key)
    return re.sub(r"\{[^}]*\}", "{tenant}", family)


def memory_by_family(r: redis.Redis) -> Counter[str]:
    sizes: Counter[str] = Counter()
    for key in r.scan_iter(count=1000):
        name = key.decode() if isinstance(key, bytes) else key
        sizes[key_family(name)] += int(r.memory_usage(name) or 0)
    return sizes


@dataclass(frozen=True)
class Idle:
    """What the gateway and its worker cost Redis per second with no job to do."""

    calls: dict[str, float]
    cpu_s: float


def report(
    kind: Kind,
    before: Snapshot,
    after: Snapshot,
    idle: Idle,
    own: int,
    memory: tuple[Counter[str], Counter[str]],
) -> dict[str, Any]:
    span = after.at - before.at
    calls = after.calls - before.calls
    calls["zcard"] -= own
    per_job = {
        name: (count - idle.calls.get(name, 0) * span) / JOBS for name, count in calls.items()
    }
    per_job = {k: v for k, v in per_job.items() if v >= 0.05}
    cpu = max(0.0, (after.cpu_s - before.cpu_s) - idle.cpu_s * span) / JOBS
    memory_before, memory_after = memory
    grown = {
        family: (memory_after[family] - memory_before.get(family, 0)) / JOBS
        for family in memory_after
        if memory_after[family] - memory_before.get(family, 0) > 0
    }
    return {
        "kind": kind.name,
        "jobs": JOBS,
        "seconds": round(span, 1),
        "commands_per_job": round(sum(per_job.values()), 1),
        "round_trips_per_job_evalsha": round(per_job.get("evalsha", 0.0), 1),
        "by_command": {k: round(v, 2) for k, v in sorted(per_job.items(), key=lambda i: -i[1])},
        "redis_cpu_ms_per_job": round(cpu * 1000, 3),
        "jobs_per_s_at_half_a_core": round(0.5 / cpu) if cpu else None,
        "used_memory_bytes_per_job": round((after.used_memory - before.used_memory) / JOBS),
        "key_bytes_per_job": {k: round(v) for k, v in sorted(grown.items(), key=lambda i: -i[1])},
    }


async def measure(gateway: str, r: redis.Redis) -> list[dict[str, Any]]:
    auth = {"Authorization": f"Bearer {TENANT_KEY}"}
    results = []
    async with httpx.AsyncClient(base_url=gateway, headers=auth, timeout=60) as client:
        warm = await client.post(
            "/v1/images/remove-background",
            json={"image": {"data": png_b64()}, "provider": "imagepig"},
            headers={"Prefer": "wait=30"},
        )
        assert warm.status_code == 200, warm.text
        await asyncio.sleep(1)
        quiet = Snapshot.take(r)
        await asyncio.sleep(10)
        idle_end = Snapshot.take(r)
        idle_span = idle_end.at - quiet.at
        idle = Idle(
            {k: v / idle_span for k, v in (idle_end.calls - quiet.calls).items()},
            (idle_end.cpu_s - quiet.cpu_s) / idle_span,
        )
        for kind in KINDS:
            memory_before = memory_by_family(r)
            before = Snapshot.take(r)
            own = await run_kind(client, kind, r)
            after = Snapshot.take(r)
            memory_after = memory_by_family(r)
            results.append(report(kind, before, after, idle, own, (memory_before, memory_after)))
            print(json.dumps(results[-1], indent=2), flush=True)
    print(
        "idle gateway + worker: "
        f"{sum(idle.calls.values()):.1f} commands/s, "
        f"{idle.cpu_s * 1000:.1f} ms Redis CPU per s"
    )
    return results


def main() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
    with tempfile.TemporaryDirectory(prefix="mediagate-capacity-") as tmp:
        work = Path(tmp)
        redis_port, sandbox_port, gateway_port = free_port(), free_port(), free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        server = [
            redis_server_binary(),
            "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(work),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        ]  # fmt: skip
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        gateway = f"http://127.0.0.1:{gateway_port}"
        env = {
            **base,
            "MEDIAGATE_REDIS_URL": redis_url,
            "MEDIAGATE_DATA_DIR": str(work / "gateway"),
            "MEDIAGATE_SANDBOX": "true",
            "MEDIAGATE_SANDBOX_URL": sandbox,
            "MEDIAGATE_SANDBOX_JOB_S": str(SANDBOX_JOB_S),
            "MEDIAGATE_PROVIDERS__PIXELAPI__POLL_INTERVAL_S": str(POLL_S),
            "MEDIAGATE_PROVIDERS__PIXELAPI__LIMITS": json.dumps(
                {"default": {"requests_per_minute": 60000}}
            ),
            "MEDIAGATE_SANDBOX_RATE_LIMITS": json.dumps({"pixelapi": 60000}),
        }
        cli = [sys.executable, "-m", "app.cli", "--log-level", "warning"]
        emulators = [*cli, "sandbox", "--port", str(sandbox_port)]
        with (
            started(server, base, redis_url),
            started(emulators, env, f"{sandbox}/_sandbox/stats"),
            started([*cli, "serve", "--port", str(gateway_port)], env, f"{gateway}/healthz"),
        ):
            r = redis.Redis.from_url(redis_url, decode_responses=True)
            asyncio.run(measure(gateway, r))


if __name__ == "__main__":
    main()
