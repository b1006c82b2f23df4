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
    """Each job as ``GET /v1/jobs/{id}`` shows it once terminal; fails after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = list(ids)
    done: dict[str, dict[str, Any]] = {}
    while pending:
        assert loop.time() < deadline, f"{len(pending)} of {len(pending) + len(done)} unfinished"
        for job_id in pending:
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            if job["status"] in TERMINAL:
                done[job_id] = job
        pending = [i for i in pending if i not in done]
        if pending:
            await asyncio.sleep(every_s)
    return done
