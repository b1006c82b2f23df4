"""PixelAPI emulator, the jobs: what each submission is, where it is in its life, and its output.

A job is ``queued`` for the first fifth of its duration (``timing.job_s``), ``processing``,
then ends ``completed``, or ``failed`` / ``blocked`` when a fault said so. Jobs and their
outputs are kept in memory for 24 h from creation; an output is a real PNG rendered on request
from the job's size and seed. Times here are the emulator's lifecycle clock, passed in.
"""

from __future__ import annotations

import uuid
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from app.sandbox import images
from app.sandbox.control import Fault

QUEUED_SHARE = 0.2
"""Share of a job's duration spent ``queued`` before ``processing``."""
OUTPUT_TTL_S = 24 * 3600

Operation = Literal["generate", "remove-background", "upscale"]
Outcome = Literal["completed", "failed", "blocked"]

CREDITS: dict[Operation, float] = {"generate": 5.0, "remove-background": 4.0, "upscale": 20.0}
PREFIXES: dict[Operation, str] = {"generate": "", "remove-background": "bg-rm-", "upscale": "up-"}
FAULT_OUTCOMES: dict[Fault, tuple[Outcome, str]] = {
    Fault.blocked: ("blocked", "Content policy violation: the content was blocked by our filters."),
    Fault.no_face: ("failed", "No face detected in the image."),
}


@dataclass(frozen=True)
class Work:
    """What a submission asks for: the output picture's size and look."""

    width: int
    height: int
    alpha: bool = False
    model: str | None = None
    seed: int | None = None


@dataclass
class Job:
    id: str
    operation: Operation
    work: Work
    credits: float
    created_s: float
    ends_s: float
    created_at: str
    output_path: str
    outcome: Outcome = "completed"
    error: str | None = None
    refunded: bool = False


class Jobs:
    """The account's jobs, by generation id and by output path, oldest first."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.outputs: dict[str, str] = {}
        """Output path → generation id."""
        self.order: deque[str] = deque()

    def start(
        self, operation: Operation, work: Work, fault: Fault | None, now: float, duration: float
    ) -> Job:
        """A new job ending ``duration`` after ``now``; jobs past their 24 h are dropped."""
        stamp = datetime.now(UTC)
        job = Job(
            id=f"{PREFIXES[operation]}{uuid.uuid4()}",
            operation=operation,
            work=work,
            credits=CREDITS[operation],
            created_s=now,
            ends_s=now + duration,
            created_at=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            output_path=f"{stamp:%Y/%m/%d}/{uuid.uuid4().hex}.png",
        )
        if fault in FAULT_OUTCOMES:
            job.outcome, job.error = FAULT_OUTCOMES[fault]
        self.jobs[job.id], self.outputs[job.output_path] = job, job.id
        self.order.append(job.id)
        while (oldest := self.jobs[self.order[0]]).created_s < now - OUTPUT_TTL_S:
            self.order.popleft()
            del self.jobs[oldest.id], self.outputs[oldest.output_path]
        return job

    def get(self, generation_id: str) -> Job | None:
        return self.jobs.get(generation_id)

    def by_output(self, path: str) -> Job | None:
        """The job whose output is at ``path`` (``yyyy/mm/dd/name.png``)."""
        return self.jobs.get(self.outputs.get(path, ""))

    def __iter__(self) -> Iterator[Job]:
        return iter(self.jobs.values())


def stage(job: Job, now: float) -> str:
    """Where the job is at ``now``: ``queued``, ``processing``, or its outcome once ended."""
    if now >= job.ends_s:
        return job.outcome
    queued_until = job.created_s + QUEUED_SHARE * (job.ends_s - job.created_s)
    return "queued" if now < queued_until else "processing"


def end_now(job: Job, fault: Fault | None, now: float) -> None:
    """End a running job at once with the outcome ``fault`` gives (a finished job keeps its own)."""
    if fault in FAULT_OUTCOMES and now < job.ends_s:
        (job.outcome, job.error), job.ends_s = FAULT_OUTCOMES[fault], now


def render_output(job: Job) -> bytes:
    """The completed job's PNG: the same picture on every request."""
    work = job.work
    seed = work.seed if work.seed is not None else zlib.crc32(job.id.encode())
    return images.render(work.width, work.height, "png", seed, work.alpha)
