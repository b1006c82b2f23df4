"""Waiting on jobs through the public API, for end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx

TERMINAL = ("succeeded", "failed", "canceled")


async def wait_all_terminal(
    client: httpx.AsyncClient, ids: Iterable[str], timeout_s: float, every_s: float = 0.5
) -> dict[str, dict[str, Any]]:
    """Each job as ``GET /v1/jobs/{id}`` shows it once terminal and settled; fails after
    ``timeout_s``.

    The jobs are read in order, and a round stops at the first one still running: all must
    end anyway, so reading the rest again every round would only load the gateway under test
    (a thousand ``GET``s a round beside the work they wait for). A terminal job stays terminal,
    so once read settled it is not read again; one canceled while its submission was under
    way, its last attempt still ``submitting``, awaits the upstream's answer to it (its
    credits held) and is read again until that is recorded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = list(ids)
    total = len(pending)
    done: dict[str, dict[str, Any]] = {}
    while pending:
        job = (await client.get(f"/v1/jobs/{pending[0]}")).json()
        if job["status"] in TERMINAL and not _awaiting(job):
            done[pending.pop(0)] = job
            continue
        assert loop.time() < deadline, f"{len(pending)} of {total} unfinished: {job}"
        await asyncio.sleep(every_s)
    return done


def _awaiting(job: dict[str, Any]) -> bool:
    """Canceled while its submission was under way, the upstream's answer not yet recorded."""
    attempts = job["attempts"]
    return job["status"] == "canceled" and bool(attempts) and attempts[-1]["status"] == "submitting"
