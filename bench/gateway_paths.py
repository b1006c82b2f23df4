"""The request paths, each beside its reference: upstream direct, the FastAPI + aiohttp floor,
the bare FastAPI + Redis read.

Sync generate (``Prefer: wait``, Image Pig), async submit (202), ``GET /v1/jobs/{id}``, artifact
download, all through wrk at c=1 and c=16.
"""

from __future__ import annotations

import json
import time

import httpx

from app.store import keys
from bench.core import CONCURRENCY, Context, scenario
from bench.load import Request
from bench.servers import IMAGEPIG_PATH

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
    through = generate(ctx, wait=True)
    for c in CONCURRENCY:
        ctx.measure(f"upstream c={c}", "sync: upstream direct (mock Image Pig)", upstream, c)
        ctx.measure(f"floor c={c}", "sync: FastAPI + aiohttp forward (floor)", floor, c)
        ctx.measure(
            f"sync c={c}",
            "sync: POST /v1/images/generate + Prefer: wait",
            through,
            c,
            against=f"floor c={c}",
        )
    added = ctx.points["sync c=1"].p50_ms - ctx.points["upstream c=1"].p50_ms
    ratio = ctx.points["sync c=16"].rps / ctx.points["floor c=16"].rps
    ctx.target("sync c=16 >= 35 % of the floor", ratio >= 0.35, f"{ratio:.1%}")
    ctx.target("added p50 at c=1 <= 1.5 ms over upstream direct", added <= 1.5, f"{added:.2f} ms")


@scenario
def read_job(ctx: Context) -> None:
    job_id = str(probe_job(ctx)["id"])
    bare = Request("GET", f"{ctx.bare}/hash/{keys.job(job_id)}", {})
    through = Request("GET", f"{ctx.gateway}/v1/jobs/{job_id}", ctx.auth)
    for c in CONCURRENCY:
        ctx.measure(f"bare c={c}", "read: FastAPI + redis-py HGETALL (bare)", bare, c)
        ctx.measure(f"get c={c}", "read: GET /v1/jobs/{id}", through, c, against=f"bare c={c}")
    ratio = ctx.points["get c=16"].rps / ctx.points["bare c=16"].rps
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
        ctx.measure(f"async c={c}", "async: POST /v1/images/generate -> 202", submit, c)
        drained = drain(ctx)
        ctx.note(f"  queued jobs of async c={c} finished by the workers in {drained:.1f} s")
    rps = ctx.points["async c=16"].rps
    ctx.target("async submit >= 1,000 req/s (2 processes)", rps >= 1000, f"{rps:.0f} req/s")


def drain(ctx: Context, limit_s: float = 120) -> float:
    """Wait until the workers have no job due or leased (the submitted ones all ran)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if ctx.redis.zcard(keys.DUE) + ctx.redis.zcard(keys.LEASES) == 0:
            break
        time.sleep(0.2)
    return time.monotonic() - started
