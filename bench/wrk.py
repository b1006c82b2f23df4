"""Driving ``wrk`` (Debian's package; installed with apt-get when missing).

One wrk thread, keep-alive connections, a short warm-up run before each measured run. A Lua
script sets the request and prints the summary as one JSON line, parsed into a ``Point``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from redis import Redis

from bench.load import Request

MARK = "BENCH-JSON "

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    "MARK", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Point:
    """One measured point: ``requests`` answered 2xx/3xx in ``seconds``."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    split: tuple[int, ...] = ()
    """wrk's connections per server process, largest first, seen half-way through the run
    (``split_of``); empty when not seen."""
    cpu_s: tuple[float, float] | None = None
    """CPU seconds (user, system) the server's processes spent over the measured run
    (``ServerCpu``); None where they could not be read."""
    redis_s: float | None = None
    """CPU seconds (user + system) the Redis given to :func:`wrk` spent over the measured run
    (``INFO cpu``); None when none was given."""
    load_s: float = 0.0
    """CPU seconds (user + system) wrk itself spent over the measured run."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def per_request_us(self, seconds: float | None) -> float | None:
        """``seconds`` of CPU per request answered, in µs."""
        if seconds is None or not self.requests:
            return None
        return seconds / self.requests * 1e6

    @property
    def cpu_us(self) -> tuple[float, float] | None:
        """The server's own CPU per request answered, user and system, in µs: what it
        costs beside the load generator, the upstream and Redis (other processes)."""
        if self.cpu_s is None:
            return None
        user, system = (self.per_request_us(part) for part in self.cpu_s)
        return None if user is None or system is None else (user, system)


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian when missing (as root; else ask for it)."""
    return ensure_tool("wrk", "make bench")


def ensure_tool(name: str, needed_by: str) -> str:
    """The binary ``name`` (Debian's package of that name), installed with apt-get when
    missing (as root; else ask for it)."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit(f"{needed_by} needs {name}: apt-get install -y {name}")
    install = ["apt-get", "install", "-y", name]
    quiet = subprocess.DEVNULL
    if subprocess.call(install, stdout=quiet, stderr=quiet) != 0:
        subprocess.check_call(["apt-get", "update"], stdout=quiet, stderr=quiet)
        subprocess.check_call(install, stdout=quiet, stderr=quiet)
    return shutil.which(name) or name


def _lua(request: Request) -> str:
    lines = [f'wrk.method = "{request.method}"']
    for name, value in request.headers.items():
        lines.append(f"wrk.headers[ {_quote(name)} ] = {_quote(value)}")
    if request.body:
        lines.append(f"wrk.body = {_quote(request.body.decode())}")
    return "\n".join(lines) + _DONE.replace("MARK", MARK)


def _quote(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def wrk(
    request: Request,
    connections: int,
    seconds: float,
    warmup_s: float = 1.0,
    redis: Redis | None = None,
) -> Point:
    """``connections`` keep-alive connections on one wrk thread for ``seconds``; with
    ``redis``, what that Redis spent of the CPU over the run too (``Point.redis_s``)."""
    binary = ensure_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(request))
    try:
        args = [binary, "-t1", f"-c{connections}", "-s", script.name, request.url]
        if warmup_s > 0:
            subprocess.run(
                [*args[:3], f"-d{max(1, round(warmup_s))}s", *args[3:]], capture_output=True
            )
        split: list[tuple[int, ...]] = []
        seen = threading.Timer(seconds / 2, lambda: split.append(split_of(request.url)))
        cpu = ServerCpu(request.url)
        redis_before = _redis_cpu(redis)
        load_before = _children_cpu()
        seen.start()
        try:
            done = subprocess.run(
                [*args[:3], f"-d{max(1, round(seconds))}s", "--timeout", "30s", *args[3:]],
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            seen.cancel()
            seen.join()
        spent = cpu.spent()
        load_s = _children_cpu() - load_before
        redis_after = _redis_cpu(redis)
    finally:
        Path(script.name).unlink()
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            data = json.loads(line.removeprefix(MARK))
            return Point(
                requests=data["requests"] - data["errors"],
                errors=data["errors"],
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                split=split[0] if split else (),
                cpu_s=spent,
                redis_s=(
                    redis_after - redis_before
                    if redis_after is not None and redis_before is not None
                    else None
                ),
                load_s=load_s,
            )
    raise RuntimeError(f"wrk printed no summary: {done.stdout}\n{done.stderr}")


def split_of(url: str) -> tuple[int, ...]:
    """The established connections to ``url``'s port, counted per server process (``ss``
    from iproute2; empty when it is missing), largest first.

    With several processes on one listening socket, the process that wakes first accepts
    every connection waiting, so wrk's connections, opened at once, can all land on one
    process (16+0) or split (8+8, 11+5). Such a point measures one core or two: the reason
    two runs of the same server can differ by nearly twice at c=16 (``docs/performance.md``).
    """
    port = urlsplit(url).port
    listed = _ss("-tnpH", "state", "established")
    sockets = [line.split() for line in listed.splitlines()]
    wrk_ports = {  # wrk's own ends of its connections to the port
        local.rpartition(":")[2]
        for _, _, local, peer, *owner in sockets
        if peer.endswith(f":{port}") and '"wrk"' in " ".join(owner)
    }
    per: dict[str, int] = {}
    for _, _, local, peer, *owner in sockets:
        found = re.search(r"pid=(\d+)", " ".join(owner))
        if local.endswith(f":{port}") and peer.rpartition(":")[2] in wrk_ports and found:
            per[found[1]] = per.get(found[1], 0) + 1
    return tuple(sorted(per.values(), reverse=True))


class ServerCpu:
    """The CPU time of the processes listening on ``url``'s port (``ss`` from iproute2 finds
    them; ``/proc/<pid>/stat`` says what each spent), from its creation to :meth:`spent`.
    Every process of a server holds its listening socket, so its supervisor is counted too
    (it spends next to nothing); a worker process that does not listen is not.
    """

    def __init__(self, url: str) -> None:
        self._pids = _listening(urlsplit(url).port)
        self._start = _cpu_of(self._pids)

    def spent(self) -> tuple[float, float] | None:
        end = _cpu_of(self._pids)
        if self._start is None or end is None:
            return None
        return end[0] - self._start[0], end[1] - self._start[1]


def _redis_cpu(redis: Redis | None) -> float | None:
    """The CPU seconds (user + system) the server has spent since it started."""
    if redis is None:
        return None
    cpu = redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _children_cpu() -> float:
    """The CPU seconds of this process's children that have ended (wrk's runs, waited for)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _listening(port: int | None) -> list[int]:
    listed = _ss("-ltnpH", f"sport = :{port}")
    return sorted({int(pid) for pid in re.findall(r"pid=(\d+)", listed)})


def _ss(*args: str) -> str:
    """What ``ss`` (iproute2) lists, or nothing where it is missing."""
    try:
        return subprocess.run(["ss", *args], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""


def _cpu_of(pids: list[int]) -> tuple[float, float] | None:
    """User and system CPU seconds of ``pids`` together (fields 14 and 15 of their stat)."""
    if not pids:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            user += int(fields[11])
            system += int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return user / tick, system / tick
