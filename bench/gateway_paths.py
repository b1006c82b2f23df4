"""The request paths, each beside its reference: upstream direct, the FastAPI + aiohttp floor,
the bare FastAPI + Redis read.

Sync generate (``Prefer: wait``, Image Pig), async submit (202), ``GET /v1/jobs/{id}``, artifact
download, all through wrk at c=1 and c=16.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from redis import Redis

from app.store import keys
from app.store.embedded import socket_url
from bench.core import CONCURRENCY, Context, scenario
from bench.load import Request
from bench.servers import IMAGEPIG_PATH
from bench.wrk import Point

PROMPT = "a lighthouse at dusk"
UPSTREAM_KEY = "sandbox-imagepig-key"


def _json(url: str, body: object, headers: dict[str, str]) -> Request:
    return Request(
        "POST", url, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()
    )


def generate(ctx: Context, *, wait: bool) -> Request:
    headers = {**ctx.auth, **({"Prefer": "wait=30"} if wait else {})}
    body = {"prompt": PROMPT, "provider": "imagepig"}
    return _json(f"{ctx.gateway}/v1/images/generate", body, headers)


def probe_job(ctx: Context) -> dict[str, object]:
    """One synchronous job through the gateway: it must succeed (and gives ids to read)."""
    request = generate(ctx, wait=True)
    answer = httpx.post(request.url, content=request.body, headers=request.headers, timeout=30)
    job: dict[str, object] = answer.json()
    if answer.status_code != 200 or job.get("status") != "succeeded":
        raise SystemExit(f"gateway probe failed: {answer.status_code} {answer.text[:300]}")
    return job


@scenario
def sync_generate(ctx: Context) -> None:
    upstream = _json(
        f"{ctx.upstream}{IMAGEPIG_PATH}", {"prompt": PROMPT}, {"Api-Key": UPSTREAM_KEY}
    )
    floor = _json(f"{ctx.floor}/forward", {"prompt": PROMPT}, {})
    keeper = _json(f"{ctx.keeper}/keep", {"prompt": PROMPT}, {})
    through = generate(ctx, wait=True)
    ratios: dict[int, list[float]] = {}
    for c in CONCURRENCY:
        ctx.measure(f"upstream c={c}", "sync: upstream direct (mock Image Pig)", upstream, c)
        ratios[c] = ctx.measure_turns(
            (f"floor c={c}", "sync: FastAPI + aiohttp forward (floor)", floor),
            [
                (f"keeper c={c}", "sync: floor + 2 job scripts + output file (keeper)", keeper),
                (f"sync c={c}", "sync: POST /v1/images/generate + Prefer: wait", through),
            ],
            c,
        )
    direct = ctx.points["upstream c=1"].p50_ms
    added = ctx.points["sync c=1"].p50_ms - direct
    kept, ratio = ratios[16]
    ctx.note(
        f"  keeper: {kept:.1%} of the floor at c=16, adds "
        f"{ctx.points['keeper c=1'].p50_ms - direct:.2f} ms p50 at c=1 over upstream direct; "
        f"the gateway does {ratio / kept:.0%} of the keeper's req/s at c=16"
    )
    points = [ctx.points[f"{name} c=16"] for name in ("floor", "keeper", "sync")]
    spent = [point.cpu_us for point in points]
    if all(spent):
        floor_us, keeper_us, gateway_us = (sum(cpu or ()) for cpu in spent)
        ctx.note(
            f"  own CPU per request at c=16 (user + system): floor {floor_us:.0f} µs, keeper "
            f"{keeper_us:.0f} µs, gateway {gateway_us:.0f} µs (where each is bound by its own "
            f"CPU, 35 % of the floor is about {floor_us / 0.35:.0f} µs)"
        )
        whole = [machine_us(point) for point in points]
        cores = os.cpu_count() or 1
        budget = cores * 1e6 / (0.35 * points[0].rps)
        ctx.note(
            f"  the machine's CPU per request at c=16 (server, Redis and wrk): floor "
            f"{whole[0]:.0f} µs, keeper {whole[1]:.0f} µs, gateway {whole[2]:.0f} µs; at 35 % "
            f"of the floor's req/s, {cores} cores have {budget:.0f} µs for each request, "
            "the upstream's included"
        )
    ctx.target("sync c=16 >= 35 % of the floor", ratio >= 0.35, f"{ratio:.1%}")
    ctx.target("added p50 at c=1 <= 1.5 ms over upstream direct", added <= 1.5, f"{added:.2f} ms")


def machine_us(point: Point) -> float:
    """What one request of ``point`` cost the machine's CPU, in µs: the server's own, its
    Redis's and wrk's (the mock upstream's few µs left out)."""
    redis = point.per_request_us(point.redis_s) or 0.0
    load = point.per_request_us(point.load_s) or 0.0
    return sum(point.cpu_us or ()) + redis + load


@scenario
def read_job(ctx: Context) -> None:
    job_id = str(probe_job(ctx)["id"])
    bare = Request("GET", f"{ctx.bare}/hash/{keys.job(job_id)}", {})
    through = Request("GET", f"{ctx.gateway}/v1/jobs/{job_id}", ctx.auth)
    ratios: dict[int, float] = {}
    for c in CONCURRENCY:
        ratios[c] = ctx.measure_pair(
            (f"bare c={c}", "read: FastAPI + redis-py HGETALL (bare)", bare),
            (f"get c={c}", "read: GET /v1/jobs/{id}", through),
            c,
        )
    ratio = ratios[16]
    ctx.target("GET /v1/jobs/{id} c=16 >= 70 % of bare", ratio >= 0.70, f"{ratio:.1%}")


@scenario
def artifact_download(ctx: Context) -> None:
    job = probe_job(ctx)
    output = job["output"]
    assert isinstance(output, dict)
    url = output["artifacts"][0]["url"]
    download = Request("GET", url, {})
    for c in CONCURRENCY:
        ctx.measure(
            f"artifact c={c}", "artifact: GET signed artifact URL (local blob)", download, c
        )


@scenario
def async_submit(ctx: Context) -> None:
    submit = generate(ctx, wait=False)
    for c in CONCURRENCY:
        ctx.measure(f"async c={c}", "async: POST ... -> 202, in-process workers", submit, c)
        drained = drain(ctx.redis)
        ctx.note(f"  queued jobs of async c={c} finished by the workers in {drained:.1f} s")
    with separate_worker(ctx) as (gateway, redis):
        submit = dataclasses.replace(submit, url=gateway + submit.url[len(ctx.gateway) :])
        for c in CONCURRENCY:
            ctx.measure(
                f"async api c={c}", "async: POST ... -> 202, --worker-processes 1", submit, c
            )
            drained = drain(redis)
            ctx.note(f"  queued jobs of async c={c} finished by the worker in {drained:.1f} s")
    rps = ctx.points["async api c=16"].rps
    ctx.target("async submit >= 1,000 req/s (2 API processes)", rps >= 1000, f"{rps:.0f} req/s")
    ctx.target(
        "  (the same with each process running jobs too)",
        None,
        f"{ctx.points['async c=16'].rps:.0f} req/s",
    )


@contextmanager
def separate_worker(ctx: Context) -> Iterator[tuple[str, Redis]]:
    """``mediagate serve --worker-processes 1``: the server processes only accept and read
    jobs, one worker process runs them at a lower CPU priority (``--worker-nice``), on a
    Redis of their own (so the main gateway's in-process workers do not take these jobs)."""
    from bench.run import PROCESSES, free_port, process

    port, metrics = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="mediagate-bench-apart-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
        env.update(
            MEDIAGATE_SANDBOX="true",
            MEDIAGATE_SANDBOX_URL=ctx.upstream,
            MEDIAGATE_DATA_DIR=data_dir,
            MEDIAGATE_WORKER_METRICS_PORT=str(metrics),
        )
        serve = ["app.cli", "--log-level", "warning", "serve", "--port", str(port)]
        serve += ["--processes", PROCESSES, "--worker-processes", "1"]
        url = f"http://127.0.0.1:{port}"
        with process(serve, env, f"{url}/healthz"):
            yield url, Redis.from_url(socket_url(Path(data_dir)), decode_responses=True)


def drain(redis: Redis, limit_s: float = 120) -> float:
    """Wait until the workers have no job due or leased (the submitted ones all ran)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if redis.zcard(keys.DUE) + redis.zcard(keys.LEASES) == 0:
            break
        time.sleep(0.2)
    return time.monotonic() - started
