"""A job's lease kept alive while a step runs a slow upstream call, so no other worker takes
the job meanwhile and the upstream hears of it once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError

from app.store.jobs import JobStore

log = logging.getLogger(__name__)

RENEW_RETRY_SHARE = 1 / 20
"""A lease renewal that met a Redis error is tried again after this share of the lease: many
tries before the lease, renewed a third of it ago at the latest, could run out."""


@asynccontextmanager
async def renewing(store: JobStore, job_id: str, lease: str, lease_s: float) -> AsyncIterator[None]:
    """Keep the lease alive while a slow upstream call runs: renewed every third of it
    until the step ends or a renewal finds the lease gone. A renewal the store did not
    answer (a Redis error) says nothing about the lease: it is tried again after a
    twentieth of the lease, for as long as the step runs.

    Most steps end within that first third, so a timer starts the renewing task when the
    third has passed: a step that ends sooner costs a timer, not a task started and
    cancelled."""
    renewal: asyncio.Task[None] | None = None

    async def renew() -> None:
        while True:
            try:
                renewed = await store.renew(job_id, lease, lease_s)
            except (RedisError, OSError) as exc:
                # A blip or a failover, not the lease's end: the lease may well still be
                # ours, and the call under way needs it more than ever. Soon again.
                log.warning(
                    "job %s: lease renewal failed (%s); again in %.1f s",
                    job_id,
                    exc,
                    lease_s * RENEW_RETRY_SHARE,
                )
                await asyncio.sleep(lease_s * RENEW_RETRY_SHARE)
                continue
            if not renewed:  # taken over, canceled or finished: nothing left to renew
                return
            await asyncio.sleep(lease_s / 3)

    def start() -> None:
        nonlocal renewal
        renewal = asyncio.create_task(renew())

    timer = asyncio.get_running_loop().call_later(lease_s / 3, start)
    try:
        yield
    finally:
        timer.cancel()
        if renewal is not None:
            renewal.cancel()
