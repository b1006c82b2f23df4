"""ImagePipeline emulator, the jobs: what each submission is, where it is in its life, its output.

A job is ``queued`` for the first tenth of its duration (``timing.job_s``), ``pending`` until
the fifth, ``processing`` (``progress`` rising to 99) until it ends ``completed``, or
``failed`` with one of the Errors page's ``failure_reason_code`` values when a fault, an
empty account or a faceless input said so. Jobs and their results are kept in memory for
24 h. Results are real files rendered on request: images via :mod:`app.sandbox.images`, the
voice clone's WAV via :mod:`app.sandbox.av`. Times are the emulator's lifecycle clock.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from app.sandbox import av, images

QUEUED_SHARE = 0.1
PENDING_SHARE = 0.2
RESULT_TTL_S = 24 * 3600

PRICES: dict[str, int] = {
    "/identity/faceswap/image/v1": 23,
    "/identity/lock/image/v1": 39,
    "/identity/replace/image/v1": 33,
    "/creator/instamodel/image/v1": 30,
    "/creator/tryon/image/v1": 44,
    "/identity/voice/clone/v1": 7,
}
"""Price of a completed job in thousandths of a USD (ImagePipeline credits; none documented:
$0.001 per second of the document's example ``processing_time_seconds``, rounded up)."""

Kind = Literal["image", "audio"]


@dataclass(frozen=True)
class Work:
    """What a submission asks for: the result's kind, size, format and look."""

    kind: Kind
    width: int
    height: int
    fmt: str
    seed: int
    faceless: bool = False
    """An input where a face is needed has none (one uniform colour)."""
    duration_s: float = 0.0


@dataclass(frozen=True)
class Failure:
    """How a job fails: the Errors page's ``failure_reason_code``, ``error`` and ``retryable``."""

    code: str
    error: str
    retryable: bool


RATE_LIMITED = Failure("RATE_LIMIT_EXCEEDED", "Too many requests, back off and retry.", True)
NO_CREDITS = Failure(
    "INSUFFICIENT_CREDITS", "Insufficient credits: top up credits in the dashboard.", False
)
CHARGE_FAILED = Failure("CREDIT_CHARGE_FAILED", "Billing could not be completed.", False)
BLOCKED = Failure("INPUT_INVALID", "Prompt rejected by content policy.", False)
BLOCKED_TEXT = Failure("INPUT_INVALID", "Text rejected by content policy.", False)
NO_FACE = Failure("INPUT_INVALID", "No face detected in the input image.", False)
NO_SPEECH = Failure("INPUT_INVALID", "No speech detected in the reference audio.", False)


@dataclass
class Job:
    id: str
    endpoint: str
    work: Work
    price: int
    created_s: float
    ends_s: float
    queued_at: str
    result_name: str
    callback_url: str | None = None
    failure: Failure | None = None
    result_url: str = ""
    """Where the result is served (set by the emulator, which knows its own address)."""
    settled: bool = False
    """Past its end and accounted for (charged when completed)."""
    notified: bool = False
    """Its webhook has been sent."""

    @property
    def content_type(self) -> str:
        return "audio/wav" if self.work.kind == "audio" else images.content_type(self.work.fmt)


class Jobs:
    """The account's jobs, by id and by result name, oldest first."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.results: dict[str, str] = {}
        """Result file name → job id."""
        self.order: deque[str] = deque()

    def start(
        self,
        endpoint: str,
        work: Work,
        now: float,
        duration: float,
        callback_url: str | None = None,
        failure: Failure | None = None,
    ) -> Job:
        """A new job ending ``duration`` after ``now``; jobs past their 24 h are dropped."""
        job_id = f"job_{uuid.uuid4().hex[:8]}"
        while job_id in self.jobs:
            job_id = f"job_{uuid.uuid4().hex[:8]}"
        extension = "wav" if work.kind == "audio" else work.fmt
        job = Job(
            id=job_id,
            endpoint=endpoint,
            work=work,
            price=PRICES[endpoint],
            created_s=now,
            ends_s=now + duration,
            queued_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            result_name=f"{uuid.uuid4().hex}.{extension}",
            callback_url=callback_url,
            failure=failure,
        )
        self.jobs[job.id], self.results[job.result_name] = job, job.id
        self.order.append(job.id)
        while (oldest := self.jobs[self.order[0]]).created_s < now - RESULT_TTL_S:
            self.order.popleft()
            del self.jobs[oldest.id], self.results[oldest.result_name]
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def by_result(self, name: str) -> Job | None:
        return self.jobs.get(self.results.get(name, ""))

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self.jobs.values()))


def stage(job: Job, now: float) -> tuple[str, int]:
    """Where the job is at ``now`` and its ``progress`` (0–100)."""
    if now >= job.ends_s:
        return ("failed", 0) if job.failure else ("completed", 100)
    share = (now - job.created_s) / max(job.ends_s - job.created_s, 1e-9)
    if share < QUEUED_SHARE:
        return "queued", 0
    if share < PENDING_SHARE:
        return "pending", 0
    return "processing", min(99, int(100 * (share - PENDING_SHARE) / (1 - PENDING_SHARE)))


def end_now(job: Job, failure: Failure, now: float) -> None:
    """Fail a running job at once (a finished job keeps its outcome)."""
    if now < job.ends_s:
        job.failure, job.ends_s = failure, now


def render(job: Job) -> bytes:
    """The completed job's result: the same file on every request."""
    work = job.work
    if work.kind == "audio":
        return av.wav_bytes(work.duration_s)
    return images.render(work.width, work.height, work.fmt, work.seed)
