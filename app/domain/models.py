"""The canonical job: what clients read back, and what the store keeps.

``Job`` is the public shape (DESIGN §2.1). ``JobRecord`` wraps it with what only the gateway
needs (owning tenant, parameters with media as references, the routing plan, the upstream
state of the current attempt), and is what the store serialises.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.domain.errors import ErrorCode
from app.domain.operations import Operation

JSONValue = Any  # structured provider results (keywords, scores) are free-form JSON


class JobStatus(StrEnum):
    """Where a job is in its life. The last three are terminal."""

    queued = "queued"
    """Accepted and waiting for a worker (or for an upstream budget)."""
    running = "running"
    """A worker submitted it upstream, or is about to; polling until the upstream finishes."""
    succeeded = "succeeded"
    """Finished; ``output`` holds the artifacts and structured data."""
    failed = "failed"
    """Finished without a result; ``error`` says why. Never charged."""
    canceled = "canceled"
    """Canceled by the client. Charged only if the upstream had already finished."""

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


class AttemptStatus(StrEnum):
    submitting = "submitting"
    """Recorded before the upstream call; a worker that finds this after a crash re-runs it."""
    running = "running"
    """The upstream accepted it; ``provider_job_id`` is known and is polled, never resubmitted."""
    succeeded = "succeeded"
    failed = "failed"


def _new_id(prefix: str) -> str:
    # 48-bit millisecond time + 64 random bits, base32-ish lowercase: sortable by creation.
    stamp = int(time.time() * 1000)
    return f"{prefix}_{stamp:012x}{os.urandom(8).hex()}"


def new_job_id() -> str:
    return _new_id("job")


def new_file_id() -> str:
    return _new_id("file")


def new_artifact_id() -> str:
    return _new_id("art")


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobError(BaseModel):
    code: ErrorCode
    message: str
    provider_code: str | None = None
    retryable: bool = False


class Attempt(BaseModel):
    provider: str
    provider_job_id: str | None = None
    status: AttemptStatus = AttemptStatus.submitting
    error: JobError | None = None
    started_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None


class Artifact(BaseModel):
    id: str
    url: str
    content_type: str
    bytes: int
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None


class JobOutput(BaseModel):
    artifacts: list[Artifact] = Field(default_factory=list)
    data: dict[str, JSONValue] = Field(default_factory=dict)


class Credits(BaseModel):
    reserved: int = 0
    charged: int = 0


class JobLinks(BaseModel):
    self: str
    cancel: str
    events: str


class Job(BaseModel):
    """A job as clients see it."""

    id: str
    object: str = "job"
    operation: Operation
    status: JobStatus
    provider: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    input: dict[str, JSONValue]
    output: JobOutput | None = None
    error: JobError | None = None
    progress: float | None = None
    queue_position: int | None = None
    credits: Credits = Field(default_factory=Credits)
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    links: JobLinks


class UpstreamSlot(BaseModel):
    """The provider credential the current attempt runs on, and a request reserved on it."""

    credential: int
    ready_at_ms: int | None = None
    """When set, a request reserved in the credential's budget that has not been made yet."""


class JobRecord(BaseModel):
    """Everything the gateway keeps about a job; ``job`` is the public part."""

    model_config = ConfigDict(validate_assignment=False)

    job: Job
    tenant_id: str
    params: dict[str, JSONValue]
    """The operation's parameters, media as ``url`` or ``file_id`` references."""
    plan: list[str]
    """Providers to try, in order; the first is the current attempt's."""
    callback_url: str | None = None
    upstream: UpstreamSlot | None = None

    @property
    def current_attempt(self) -> Attempt | None:
        attempts = self.job.attempts
        return attempts[-1] if attempts else None
