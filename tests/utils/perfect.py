"""Running background removals pinned to Perfect Corp through a gateway, for the liveness and
per-IP tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.e2e.conftest import SANDBOX_KEY
from tests.utils.clients import load_limits
from tests.utils.deadlines import REQUEST_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_bytes
from tests.utils.sandbox import CONTROL

CONNECTIONS = 32
"""The client's connections to the gateway, and so its requests at once."""


async def run_tasks(
    api_url: str, count: int, timeout_s: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Submit ``count`` background removals pinned to Perfect at once; wait for all to end.
    Returns the jobs and the Perfect emulator's counters."""
    async with httpx.AsyncClient(
        base_url=api_url,
        headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
        timeout=httpx.Timeout(REQUEST_S, pool=None),
        limits=load_limits(CONNECTIONS),
    ) as client:
        await client.delete("/_sandbox/faults", headers=CONTROL)
        uploaded = await client.post(
            "/v1/files", files={"file": ("photo.png", png_bytes(48, 48), "image/png")}
        )
        assert uploaded.status_code == 201, uploaded.text
        image = {"file_id": uploaded.json()["id"]}

        # as many requests at once as there are connections: the gateway sees the same
        # concurrency, and httpx's pool does not rescan a queue of a thousand waiting
        # requests on every answer (twice the client's CPU)
        gate = asyncio.Semaphore(CONNECTIONS)

        async def submit(i: int) -> str:
            async with gate:
                response = await client.post(
                    "/v1/images/remove-background",
                    json={
                        "image": image,
                        "provider": "perfectcorp",
                        "fallback": False,
                        "metadata": {"i": i},
                    },
                )
            assert response.status_code == 202, response.text
            return str(response.json()["id"])

        ids = await asyncio.gather(*(submit(i) for i in range(count)))
        done = await wait_all_terminal(client, ids, timeout_s, every_s=1.0)
        stats = (await client.get("/_sandbox/stats", headers=CONTROL)).json()["perfectcorp"]
    return list(done.values()), stats


def check_all_succeeded_once(jobs: list[dict[str, Any]]) -> None:
    failures = [j["error"] for j in jobs if j["status"] != "succeeded"]
    assert not failures, failures[:3]
    # a dropped task would have failed its attempt (InvalidTaskId) and been tried again
    tried_again = [j["attempts"] for j in jobs if len(j["attempts"]) != 1]
    assert not tried_again, (len(tried_again), tried_again[:3])
