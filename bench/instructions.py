"""Instructions the gateway's process executes per request: a figure a busy machine does not move.

``python -m bench.instructions`` (``make bench-instructions``) runs ``bench.cpu`` under
valgrind's callgrind twice per scenario, with 100 and with 400 requests measured (after the
same warm-up), and reports ``(I(400) - I(100)) / 300``: the instructions of one request in the
gateway's process, its start-up and warm-up cancelled out. Callgrind counts the instructions
the process executes in user space, whatever else runs beside it: the same tree measured twice
differs by about 0.1 %, where CPU time moves by ±15 %, so a change worth a few percent can be
decided on it. What it does not count: the kernel's work for the process (socket writes, file
creation), and the other processes (Redis, the upstream). Each run takes one to two minutes
under valgrind; the two counts of a scenario run side by side.

``BENCH_ONLY``: comma-separated words, each naming one of ``bench.cpu``'s scenarios by a part
of its name: ``wait`` (the synchronous path, the default), ``jobs/{id}``, ``(async submit)``,
``artifact``, ``worker run``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.wrk import ensure_tool

COUNTS = (100, 400)
COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(word: str, count: int, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "BENCH_ONLY": word, "BENCH_CPU_N": str(count)}
    env.pop("BENCH_CPU_PROFILE", None)
    return subprocess.Popen(
        [
            ensure_tool("valgrind", "make bench-instructions"),
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.cpu",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def main() -> None:
    words = [w for w in os.environ.get("BENCH_ONLY", "wait").split(",") if w]
    with tempfile.TemporaryDirectory(prefix="mediagate-instructions-") as scratch:
        for word in words:
            runs = [instructions(word, n, Path(scratch) / f"{n}.out") for n in COUNTS]
            totals = []
            for run in runs:
                stdout, stderr = run.communicate()
                found = COLLECTED.search(stderr)
                if run.returncode != 0 or found is None:
                    raise SystemExit(f"bench.cpu under callgrind failed:\n{stdout}\n{stderr}")
                totals.append(int(found.group(1)))
            measured = [line for line in stdout.splitlines() if "µs CPU/" in line]
            if len(measured) != 1:
                raise SystemExit(f"{word!r} names {len(measured)} scenarios of bench.cpu, not one")
            per_request = (totals[1] - totals[0]) / (COUNTS[1] - COUNTS[0])
            name = measured[0].split("  ")[0]
            print(f"{name:<40} {per_request:12,.0f} instructions/request", flush=True)


if __name__ == "__main__":
    main()
