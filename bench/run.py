"""``make bench``: the gateway's paths beside their references, measured in one run with wrk.

Starts on free ports: a mock upstream (``bench.servers upstream``: Image Pig's success answer
at once), the FastAPI + aiohttp forwarder (the floor), ``mediagate serve --processes 2`` in
sandbox mode with its provider emulators pointed at the mock upstream (embedded Redis), and a
bare FastAPI + redis-py server on that Redis. Then runs every scenario registered by the
modules in ``SCENARIO_MODULES`` and prints req/s, p50, p99 with the ratios, the Redis costs
and the targets.

Environment: ``BENCH_SECONDS`` per point (default 5), ``BENCH_PAIRS`` times each ratio's
two sides are measured in turn (default 3; the median pair counts), ``BENCH_PROCESSES``
server processes for the gateway and both references (default 2), ``BENCH_RSS_JOBS``
(default 100000), ``BENCH_ONLY`` (comma-separated scenario names).
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from redis import Redis

from app.store.embedded import socket_url
from bench.core import HEADER, SCENARIOS, Context
from bench.wrk import ensure_wrk

SCENARIO_MODULES = ["bench.gateway_paths", "bench.redis_costs", "bench.artifacts"]
"""Modules whose ``@scenario`` functions run, in this order (a new one: add it here)."""

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
PAIRS = int(os.environ.get("BENCH_PAIRS", "3"))
PROCESSES = os.environ.get("BENCH_PROCESSES", "2")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def process(args: list[str], env: dict[str, str], health: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(health, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{' '.join(args)} did not start") from None
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def children(pid: int) -> list[int]:
    """The server processes uvicorn started (or ``pid`` itself with one process)."""
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    pids = [int(p) for p in found]
    return [p for p in pids if "spawn_main" in _cmdline(p)] or [pid]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: every server is stopped


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ensure_wrk()
    for name in SCENARIO_MODULES:
        importlib.import_module(name)
    only = {n for n in os.environ.get("BENCH_ONLY", "").split(",") if n}
    ports = {name: free_port() for name in ("upstream", "floor", "keeper", "bare", "gateway")}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
    with tempfile.TemporaryDirectory(prefix="mediagate-bench-") as data_dir, ExitStack() as stack:
        redis_socket = socket_url(Path(data_dir))
        gateway_env = {
            **base_env,
            "MEDIAGATE_SANDBOX": "true",
            "MEDIAGATE_SANDBOX_URL": url["upstream"],
            "MEDIAGATE_DATA_DIR": data_dir,
        }
        stack.enter_context(
            process(
                ["bench.servers", "upstream", "--port", str(ports["upstream"])],
                base_env,
                f"{url['upstream']}/",
            )
        )
        stack.enter_context(
            process(
                [
                    "bench.servers",
                    "floor",
                    "--port",
                    str(ports["floor"]),
                    "--processes",
                    PROCESSES,
                    "--upstream",
                    url["upstream"],
                ],
                base_env,
                f"{url['floor']}/docs",
            )
        )
        gateway = stack.enter_context(
            process(
                [
                    "app.cli",
                    "--log-level",
                    "warning",
                    "serve",
                    "--port",
                    str(ports["gateway"]),
                    "--processes",
                    PROCESSES,
                ],
                gateway_env,
                f"{url['gateway']}/healthz",
            )
        )
        stack.enter_context(
            process(
                [
                    "bench.servers",
                    "bare",
                    "--port",
                    str(ports["bare"]),
                    "--processes",
                    PROCESSES,
                    "--redis",
                    redis_socket,
                ],
                base_env,
                f"{url['bare']}/docs",
            )
        )
        stack.enter_context(
            process(
                [
                    "bench.servers",
                    "keeper",
                    "--port",
                    str(ports["keeper"]),
                    "--processes",
                    PROCESSES,
                    "--upstream",
                    url["upstream"],
                    "--redis",
                    redis_socket,
                    "--blobs",
                    str(Path(data_dir) / "keeper-blobs"),
                ],
                base_env,
                f"{url['keeper']}/docs",
            )
        )
        redis = Redis.from_url(redis_socket, decode_responses=True)
        ctx = Context(
            upstream=url["upstream"],
            floor=url["floor"],
            keeper=url["keeper"],
            bare=url["bare"],
            gateway=url["gateway"],
            redis=redis,
            gateway_pids=lambda: children(gateway.pid),
            seconds=SECONDS,
            pairs=PAIRS,
        )
        print(
            f"wrk -t1, {SECONDS:g} s per point after 1 s warm-up, the ratios' two sides "
            f"{PAIRS} times in turn (median shown); "
            f"{PROCESSES} processes each for gateway, floor, keeper and bare"
        )
        print(HEADER)
        for run in SCENARIOS:
            if only and run.__name__ not in only:
                continue
            run(ctx)
        print("\ntargets")
        for name, holds, shown in ctx.targets:
            verdict = {True: "ok  ", False: "MISS", None: "    "}[holds]
            print(f"  {verdict} {name:<52} {shown}")


if __name__ == "__main__":
    main()
