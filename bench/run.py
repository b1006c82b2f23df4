"""``make bench``: the gateway's synchronous path against the sandbox called directly.

Starts ``mediagate sandbox`` and ``mediagate serve`` (embedded Redis, sandbox providers
pointed at that sandbox process) on free ports, then measures in one run:

(a) ``POST /v1/images/remove-background`` with ``Prefer: wait`` through the gateway (Image
    Pig), against ``POST /cutout`` on the Image Pig sandbox directly, at c=1 and c=16;
(b) ``GET /v1/jobs/{id}`` throughput.

Prints req/s, p50, p99 and the ratios. Seconds per scenario: ``BENCH_SECONDS`` (default 5).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from PIL import Image

from bench.load import Request, Result, run

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
PROCESSES = os.environ.get("BENCH_PROCESSES", "2")
SANDBOX_IMAGEPIG_KEY = "sandbox-imagepig-key"
TENANT_KEY = "mg_test_sandbox"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def process(args: list[str], env: dict[str, str], health: str) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--log-level", "warning", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(health, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{args[0]} did not start") from None
                time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def sample_png() -> str:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((64, 64)).convert("RGB").save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def row(name: str, result: Result) -> str:
    return f"{name:<44} {result.rps:>9.0f} {result.p50:>9.2f} {result.p99:>9.2f} {result.errors:>7}"


async def scenarios(sandbox: str, gateway: str) -> None:
    image = sample_png()
    direct = Request(
        "POST",
        f"{sandbox}/_sandbox/imagepig/cutout",
        {"Content-Type": "application/json", "Api-Key": SANDBOX_IMAGEPIG_KEY},
        json.dumps({"image_data": image}).encode(),
    )
    auth = {"Authorization": f"Bearer {TENANT_KEY}"}
    through = Request(
        "POST",
        f"{gateway}/v1/images/remove-background",
        {"Content-Type": "application/json", "Prefer": "wait=30", **auth},
        json.dumps({"image": {"data": image}, "provider": "imagepig"}).encode(),
    )
    async with httpx.AsyncClient(headers=auth) as client:
        probe = await client.post(
            through.url, content=through.body, headers={**through.headers}, timeout=30
        )
        if probe.status_code != 200 or probe.json()["status"] != "succeeded":
            raise SystemExit(f"gateway probe failed: {probe.status_code} {probe.text[:300]}")
        job_id = probe.json()["id"]
    read = Request("GET", f"{gateway}/v1/jobs/{job_id}", auth)

    print(f"{'scenario':<44} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    results: dict[str, Result] = {}
    for c in (1, 16):
        results[f"direct c={c}"] = await run(direct, c, SECONDS)
        print(row(f"(a) sandbox direct  POST /cutout      c={c}", results[f"direct c={c}"]))
        results[f"gateway c={c}"] = await run(through, c, SECONDS)
        print(row(f"(a) gateway POST remove-background c={c}", results[f"gateway c={c}"]))
    for c in (1, 16):
        results[f"read c={c}"] = await run(read, c, SECONDS)
        print(row(f"(b) gateway GET /v1/jobs/{{id}}        c={c}", results[f"read c={c}"]))

    print()
    for c in (1, 16):
        d, g = results[f"direct c={c}"], results[f"gateway c={c}"]
        print(
            f"c={c:<2} gateway/direct throughput {g.rps / d.rps:6.2f}x   "
            f"p50 added {g.p50 - d.p50:+7.2f} ms   p99 added {g.p99 - d.p99:+7.2f} ms"
        )
    print("targets: c=16 gateway >= 600 req/s; c=1 p50 added <= 3 ms; GET job >= 2000 req/s")


def main() -> None:
    sandbox_port, gateway_port = free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    gateway = f"http://127.0.0.1:{gateway_port}"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
    with tempfile.TemporaryDirectory(prefix="mediagate-bench-") as data_dir:
        gateway_env = {
            **base_env,
            "MEDIAGATE_SANDBOX": "true",
            "MEDIAGATE_SANDBOX_URL": sandbox,
            "MEDIAGATE_DATA_DIR": str(Path(data_dir)),
        }
        with (
            process(
                ["sandbox", "--port", str(sandbox_port)], base_env, f"{sandbox}/_sandbox/stats"
            ),
            process(
                ["serve", "--port", str(gateway_port), "--processes", PROCESSES],
                gateway_env,
                f"{gateway}/healthz",
            ),
        ):
            try:
                import uvloop

                uvloop.install()
            except ImportError:
                pass
            asyncio.run(scenarios(sandbox, gateway))


if __name__ == "__main__":
    main()
