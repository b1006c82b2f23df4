"""Real gateway, worker and sandbox processes for end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.utils.deadlines import KEEP_ALIVE_S, STORE_TIMEOUT_S
from tests.utils.net import free_port, wait_until_up

SIGNING_KEY = "test-signing-key-0123456789abcdef"
ADMIN_TOKEN = "test-admin-token-0123456789abcdefghij"
PERFECT_IP_CONTRACT = 1_000_000
"""Requests per 5 minutes from one address the test sandbox's Perfect account allows."""
PERFECT_PLAN = {"egress": {"requests_per_minute": PERFECT_IP_CONTRACT / 5}}
"""The gateway's side of it (``providers.perfectcorp.limits``)."""


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    url: str
    log: IO[bytes]

    def kill(self) -> None:
        """``kill -9``: no cleanup, no goodbye."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def gateway_env(redis_url: str, data_dir: Path, base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
    env.update(
        MEDIAGATE_REDIS_URL=redis_url,
        MEDIAGATE_DATA_DIR=str(data_dir),
        MEDIAGATE_SANDBOX="true",
        MEDIAGATE_PUBLIC_BASE_URL=base_url,
        MEDIAGATE_SIGNING_KEY=SIGNING_KEY,
        MEDIAGATE_SANDBOX_JOB_S="0.3",
        MEDIAGATE_PROVIDERS__PIXELAPI__POLL_INTERVAL_S="0.1",
        MEDIAGATE_ADMIN_TOKEN=ADMIN_TOKEN,
        MEDIAGATE_REDIS_TIMEOUT_S=str(STORE_TIMEOUT_S),
        # Every test process sends from 127.0.0.1, so the sandbox's Perfect account runs on a
        # large per-IP contract (both sides) unless a test sets the document's numbers.
        MEDIAGATE_SANDBOX_IP_LIMITS=json.dumps({"perfectcorp": PERFECT_IP_CONTRACT}),
        MEDIAGATE_PROVIDERS__PERFECTCORP__LIMITS=json.dumps(PERFECT_PLAN),
        MEDIAGATE_HTTP_KEEP_ALIVE_S=str(KEEP_ALIVE_S),
        # a client starved of CPU may wait long on a kept-alive connection before its next
        # request: the head timeout counts from the previous answer, so it gets the same room
        MEDIAGATE_HTTP_HEADER_TIMEOUT_S=str(KEEP_ALIVE_S),
    )
    env.update(extra)
    return env


def _spawn(args: list[str], env: Mapping[str, str], log: Path, url: str) -> Process:
    handle = log.open("ab")
    popen = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--log-level", "warning", *args],
        env=dict(env),
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    return Process(popen, url, handle)


@contextmanager
def gateway(
    redis_url: str, data_dir: Path, *, options: Sequence[str] = (), **extra: str
) -> Iterator[Process]:
    """``mediagate serve [options]`` in sandbox mode on a free port, its sandbox mounted
    in-process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = gateway_env(redis_url, data_dir, url, **extra)
    args = ["serve", "--port", str(port), *options]
    proc = _spawn(args, env, data_dir / "gateway.log", url)
    try:
        wait_until_up(f"{url}/healthz")
        yield proc
    finally:
        proc.stop()


def start_worker(redis_url: str, data_dir: Path, gateway_url: str, **extra: str) -> Process:
    """``mediagate worker``, calling the sandbox mounted in the gateway at ``gateway_url``."""
    extra = {"MEDIAGATE_SANDBOX_URL": gateway_url, **extra}  # unless given another sandbox
    env = gateway_env(redis_url, data_dir, gateway_url, **extra)
    return _spawn(["worker"], env, data_dir / "worker.log", gateway_url)


SANDBOX_NICE = -10
"""The niceness of a sandbox run apart, where the tests may raise a process's priority."""


def _prioritize(proc: Process) -> None:
    """Run the sandbox ahead of the processes it judges. Its emulators date a request when they
    read it, so on a machine short of CPU a sandbox that waits for its turn to run reads the
    requests sent meanwhile all at once, and counts the wait as the client's burst. Where
    raising a priority is not allowed (no ``CAP_SYS_NICE``, a low ``RLIMIT_NICE``) it runs as
    the tests do. Set before the process starts any thread, so that its threads share it."""
    with suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, proc.popen.pid, SANDBOX_NICE)


def start_sandbox(data_dir: Path, **extra: str) -> Process:
    """``mediagate sandbox`` alone on a free port: one set of emulators (and counters) that
    several gateways and workers share through ``MEDIAGATE_SANDBOX_URL``. It runs at a higher
    CPU priority where the tests may give it one (:func:`_prioritize`)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
    env.update({"MEDIAGATE_SANDBOX_JOB_S": "0.3", "MEDIAGATE_ADMIN_TOKEN": ADMIN_TOKEN, **extra})
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = _spawn(["sandbox", "--port", str(port)], env, data_dir / "sandbox.log", url)
    _prioritize(proc)
    try:
        wait_until_up(f"{url}/_sandbox/stats")
    except BaseException:
        proc.stop()
        raise
    return proc
