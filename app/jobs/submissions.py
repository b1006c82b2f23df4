"""A submission under way: a worker holds the job and the upstream has not answered it yet.

A cancel waits for such a submission to be answered (``JobService.cancel``), so that a task
the upstream accepted is on the record, and charged as accepted work, when the job ends. A
submission not answered within ``SUBMISSION_WAIT_S`` (an upstream may take a minute) is not
waited for longer: the job is canceled with the answer left to the worker that sent it, which
records it on the canceled job and settles the job's credits then (``Lifecycle.cancel``).
"""

from __future__ import annotations

import asyncio
import time

from app.domain.models import AttemptStatus
from app.jobs.events import EventHub
from app.store.jobs import JobStore, Stored

SUBMISSION_WAIT_S = 10.0
"""How long a cancel waits for a submission under way to be answered."""


def under_way(stored: Stored) -> bool:
    """A worker holds the job and its attempt has no upstream answer yet."""
    attempt = stored.record.current_attempt
    return (
        stored.lease is not None
        and attempt is not None
        and attempt.status is AttemptStatus.submitting
        and not stored.record.job.status.terminal
    )


async def answered(store: JobStore, events: EventHub, job_id: str) -> None:
    """Return once the job's submission is no longer under way, or after
    ``SUBMISSION_WAIT_S``: each change it is told of, or every half second, it reads again."""
    deadline = time.monotonic() + SUBMISSION_WAIT_S
    async with events.subscribe(job_id) as changes:
        while (remaining := deadline - time.monotonic()) > 0:
            stored = await store.get(job_id)
            if stored is None or not under_way(stored):
                return
            try:
                await asyncio.wait_for(changes.get(), timeout=min(remaining, 0.5))
            except TimeoutError:
                continue
