"""PixelAPI emulator, the jobs: what each submission is, where it is in its life, and its output.

A job is ``queued`` for the first fifth of its duration (``timing.job_s``), ``processing``,
then ends ``completed``, or ``failed`` / ``blocked`` when a fault said so. Jobs and their
outputs are kept in memory for 24 h from creation; an output is rendered on request from the
job's work: a real PNG (images and try-on), WAV (audio) or MP4 (video). Times here are the
emulator's lifecycle clock, passed in. This module also holds the catalogue: credits per
operation and the ``GET /v1/models`` list.
"""

from __future__ import annotations

import uuid
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from app.sandbox import av, images
from app.sandbox.control import Fault

QUEUED_SHARE = 0.2
"""Share of a job's duration spent ``queued`` before ``processing``."""
OUTPUT_TTL_S = 24 * 3600

Operation = Literal[
    "generate",
    "remove-background",
    "replace-background",
    "upscale",
    "restore-face",
    "remove-object",
    "generate-audio",
    "generate-video",
    "virtual-tryon",
]
Kind = Literal["image", "audio", "video"]
Outcome = Literal["completed", "failed", "blocked"]

IMAGE_OPERATIONS: tuple[Operation, ...] = (
    "generate",
    "remove-background",
    "replace-background",
    "upscale",
    "restore-face",
    "remove-object",
)
"""Submitted at ``POST /v1/image/{operation}``."""
CREDITS: dict[Operation, float] = {
    "generate": 5.0,
    "remove-background": 4.0,
    "replace-background": 8.0,
    "upscale": 20.0,
    "restore-face": 5.0,
    "remove-object": 8.0,
    "generate-audio": 5.0,
    "generate-video": 50.0,
    "virtual-tryon": 25.0,
}
"""What a submission costs (audio over 15 s and 720p video cost more: ``Work.credits``)."""
PREFIXES: dict[Operation, str] = {
    "remove-background": "bg-rm-",
    "replace-background": "bg-rp-",
    "upscale": "up-",
    "restore-face": "face-",
    "remove-object": "obj-rm-",
}
OUTPUTS: dict[Kind, tuple[str, str, str]] = {
    "image": ("images", "png", "image/png"),
    "audio": ("audio", "wav", "audio/wav"),
    "video": ("videos", "mp4", "video/mp4"),
}
"""Kind → output directory, extension and content type."""
FAULT_OUTCOMES: dict[Fault, tuple[Outcome, str]] = {
    Fault.blocked: ("blocked", "Content policy violation: the content was blocked by our filters."),
    Fault.no_face: ("failed", "No face detected in the image."),
}

_SIDES = {"width": [512, 1536], "height": [512, 1536]}
MODELS: list[dict[str, object]] = [
    {"id": "flux-schnell", "endpoint": "POST /v1/image/generate", "credits": 5.0,
     "speed": "~3–5s", "capabilities": {**_SIDES, "steps": [1, 8], "negative_prompt": False}},
    {"id": "sdxl", "endpoint": "POST /v1/image/generate", "credits": 5.0,
     "speed": "~8–13s", "capabilities": {**_SIDES, "steps": [20, 50], "negative_prompt": True}},
    {"id": "upscale-4x", "endpoint": "POST /v1/image/upscale", "credits": 20.0,
     "speed": "~10–30s", "capabilities": {"scale": 4, "max_output": [4096, 4096]}},
    {"id": "remove-background", "endpoint": "POST /v1/image/remove-background", "credits": 4.0,
     "speed": "~2–3s", "capabilities": {"output": "png", "alpha": True}},
    {"id": "replace-background", "endpoint": "POST /v1/image/replace-background",
     "credits": 8.0, "speed": "~5–10s", "capabilities": {"prompt": True}},
    {"id": "restore-face", "endpoint": "POST /v1/image/restore-face", "credits": 5.0,
     "speed": "~3–5s", "capabilities": {"model": "codeformer"}},
    {"id": "remove-object", "endpoint": "POST /v1/image/remove-object", "credits": 8.0,
     "speed": "~5–15s", "capabilities": {"mask": True, "prompt": True}},
    {"id": "musicgen-small", "endpoint": "POST /v1/audio/generate", "credits": 5.0,
     "speed": "~2x duration", "capabilities": {"duration": [5, 30], "output": "wav",
                                               "credits_over_15s": 10.0}},
    {"id": "wan2.1", "endpoint": "POST /v1/video/generate", "credits": 50.0,
     "speed": "~60–120s", "capabilities": {"duration": [1, 10], "fps": 16, "output": "mp4",
                                           "resolutions": {"480p": [832, 480],
                                                           "720p": [1280, 720]},
                                           "credits_720p": 100.0}},
    {"id": "virtual-tryon", "endpoint": "POST /v1/virtual-tryon", "credits": 25.0,
     "speed": "~35s", "capabilities": {"model": "catvton",
                                       "categories": ["upperbody", "lowerbody", "dress"]}},
]  # fmt: skip
"""The ``GET /v1/models`` list: the document's table, at the credits responses report, plus
the audio, video and try-on models its later sections add."""


@dataclass(frozen=True)
class Work:
    """What a submission asks for: the output's kind, size, length and look, and its price."""

    width: int = 0
    height: int = 0
    alpha: bool = False
    model: str | None = None
    seed: int | None = None
    kind: Kind = "image"
    duration_s: float = 0.0
    credits: float | None = None
    """The price when it depends on the request (else the operation's ``CREDITS``)."""


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
    """``{dir}/{yyyy}/{mm}/{dd}/{name}.{ext}`` under ``/outputs``."""
    outcome: Outcome = "completed"
    error: str | None = None
    refunded: bool = False

    @property
    def processing_ms(self) -> int:
        return round((self.ends_s - self.created_s) * 1000)


class Jobs:
    """The account's jobs, by id and by output path, oldest first."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.outputs: dict[str, str] = {}
        """Output path → job id."""
        self.order: deque[str] = deque()

    def start(
        self, operation: Operation, work: Work, fault: Fault | None, now: float, duration: float
    ) -> Job:
        """A new job ending ``duration`` after ``now``; jobs past their 24 h are dropped."""
        stamp = datetime.now(UTC)
        directory, extension, _ = OUTPUTS[work.kind]
        token = uuid.uuid4()
        job = Job(
            id=token.hex
            if operation == "virtual-tryon"
            else f"{PREFIXES.get(operation, '')}{token}",
            operation=operation,
            work=work,
            credits=work.credits if work.credits is not None else CREDITS[operation],
            created_s=now,
            ends_s=now + duration,
            created_at=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            output_path=f"{directory}/{stamp:%Y/%m/%d}/{uuid.uuid4().hex}.{extension}",
        )
        if fault in FAULT_OUTCOMES:
            job.outcome, job.error = FAULT_OUTCOMES[fault]
        self.jobs[job.id], self.outputs[job.output_path] = job, job.id
        self.order.append(job.id)
        while (oldest := self.jobs[self.order[0]]).created_s < now - OUTPUT_TTL_S:
            self.order.popleft()
            del self.jobs[oldest.id], self.outputs[oldest.output_path]
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def by_output(self, path: str) -> Job | None:
        """The job whose output is at ``path`` (``{dir}/yyyy/mm/dd/name.ext``)."""
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


def render_output(job: Job) -> tuple[bytes, str]:
    """The completed job's file and its content type: the same bytes on every request."""
    work = job.work
    content_type = OUTPUTS[work.kind][2]
    if work.kind == "audio":
        return av.wav_bytes(work.duration_s), content_type
    if work.kind == "video":
        return av.mp4_bytes(work.duration_s, work.width, work.height), content_type
    seed = work.seed if work.seed is not None else zlib.crc32(job.id.encode())
    return images.render(work.width, work.height, "png", seed, work.alpha), content_type
