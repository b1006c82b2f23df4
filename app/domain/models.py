"""The canonical job: what clients read back, and what the store keeps.

``Job`` is the public shape (docs/jobs.md). ``JobRecord`` wraps it with what only the gateway
needs (owning tenant, parameters with media as references, the routing plan, the upstream
state of the current attempt), and is what the store serialises.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain.enums import TextEnum
from app.domain.errors import ErrorCode
from app.domain.operations import Operation

JSONValue = Any  # structured provider results (keywords, scores) are free-form JSON


class JobStatus(TextEnum):
    """Where a job is in its life. The last three are terminal."""

    queued = "queued"
    """Accepted and waiting for a worker (or for an upstream budget)."""
    running = "running"
    """A worker submitted it upstream, or is about to; polling until the upstream finishes."""
    succeeded = "succeeded"
    """Finished; ``output`` holds the artifacts and structured data."""
    failed = "failed"
    """Finished without a result; ``error`` says why. Not charged, except a job past its
    deadline after the upstream accepted its task (``upstream_timeout``), charged as a cancel
    is."""
    canceled = "canceled"
    """Canceled at the client's word (a cancel, its ``Cancel-After``, its batch's cancel).
    Charged when the upstream had already accepted its task, unless the tenant's policy waives
    it (``charge_accepted_work``; see ``ChargeReason``)."""

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


class AttemptStatus(TextEnum):
    submitting = "submitting"
    """Recorded before the upstream call; a worker that finds this after a crash re-runs it.
    On a canceled job: the upstream's answer to the submission is still awaited, the job's
    credits held until it is recorded."""
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


class WebhookEvent(TextEnum):
    """What a job's ``callback_url`` may be told; ``webhook_events`` chooses among them."""

    started = "job.started"
    """The first attempt is about to go to a provider."""
    progress = "job.progress"
    """The provider reported progress (the latest is sent; earlier ones may be folded in)."""
    succeeded = "job.succeeded"
    failed = "job.failed"
    canceled = "job.canceled"

    @property
    def suffix(self) -> str:
        return self.value.removeprefix("job.")


DEFAULT_WEBHOOK_EVENTS = (WebhookEvent.succeeded, WebhookEvent.failed, WebhookEvent.canceled)
"""What a callback URL gets unless the job or its tenant chose: the end of the job."""


class ChargeReason(TextEnum):
    """Why an attempt that ended was charged to the tenant, or was not.

    Set on every attempt when it ends. An attempt with a ``provider_job_id`` was accepted by
    the upstream (which may bill the gateway's account for it); the reason says what the
    tenant was charged for it, so every accepted task is accounted for.
    """

    delivered = "delivered"
    """Charged: the work succeeded and its output was delivered."""
    canceled_after_accept = "canceled_after_accept"
    """Charged: canceled after the upstream accepted its task (it runs on, paid)."""
    deadline_after_accept = "deadline_after_accept"
    """Charged: the job's deadline passed after the upstream accepted its task."""
    canceled_waived = "canceled_waived"
    """Not charged: canceled after the upstream accepted its task, and the tenant's policy
    waives such charges."""
    deadline_waived = "deadline_waived"
    """Not charged: past its deadline after the upstream accepted its task; policy waives it."""
    upstream_failed = "upstream_failed"
    """Not charged: the upstream said the work failed, or that the task no longer exists."""
    cache_hit = "cache_hit"
    """Served from the result cache: charged the tenant's share of the price (often 0)."""
    not_accepted = "not_accepted"
    """Not charged: the upstream never gave this attempt a task id (it refused the submission
    or answered a synchronous call with a failure, the submission did not get through, the
    provider's circuit was open, or the job was canceled or timed out before a task id was
    known)."""
    unanswered = "unanswered"
    """Not charged: the submission went out whole and no answer came back (a read timeout, a
    connection cut): the upstream may have accepted it and may bill it. Its document's price
    is counted in the provider's spend, and ``GET /admin/reconcile`` lists the job when the
    tenant was charged nothing for it."""
    undelivered = "undelivered"
    """Not charged: the upstream answered with a result, and bills it, but the gateway could not
    keep its output (the disk or the object store failed, or the tenant's storage quota was
    full); the tenant got nothing. Its document's price (or the upstream's own figure) counts
    in the provider's spend, and ``GET /admin/reconcile`` lists the job."""

    @property
    def charged(self) -> bool:
        """The tenant is charged for an attempt that ends for this reason."""
        return self in _CHARGED


_CHARGED = frozenset(
    {
        ChargeReason.delivered,
        ChargeReason.cache_hit,
        ChargeReason.canceled_after_accept,
        ChargeReason.deadline_after_accept,
    }
)


class JobError(BaseModel):
    code: ErrorCode
    message: str
    provider_code: str | None = None
    retryable: bool = False


class MediaShape(BaseModel):
    """One input as received or as sent: its type and bytes, a picture's size, a recording's
    length."""

    width: int | None = None
    height: int | None = None
    content_type: str
    bytes: int
    duration_s: float | None = None
    """Seconds of audio or video, where the gateway read them."""


class UpstreamFile(BaseModel):
    """A copy of an output that an upstream keeps and takes again as an input by its id
    (Perfect Corp's ``dst_id``), so the bytes need not be uploaded a second time."""

    model_config = ConfigDict(frozen=True)

    provider: str
    account: str
    """Which of the provider's accounts holds it (a digest naming the credential)."""
    file_id: str
    usable_until: float
    """Unix seconds until which the upstream still keeps it (with a margin)."""


class ConformedInput(BaseModel):
    """An input the gateway changed to fit what the provider accepts, before sending it: a
    picture resized or re-encoded, a recording converted to another format."""

    input: str
    """The input's ``file_id`` or URL."""
    before: MediaShape
    after: MediaShape
    rotated: bool = False
    """The picture's EXIF orientation was applied to its pixels."""


class Attempt(BaseModel):
    provider: str
    provider_job_id: str | None = None
    status: AttemptStatus = AttemptStatus.submitting
    error: JobError | None = None
    poll_errors: int = 0
    """Polls of the upstream task that did not read its state (5xx, 429, timeouts, bodies
    that do not parse); each is polled again with backoff, never submitted again."""
    charge_reason: ChargeReason | None = None
    """Set when the attempt ends: whether, and why, the tenant was charged for it."""
    conformed: list[ConformedInput] = Field(default_factory=list)
    """Inputs resized or re-encoded to the provider's documented limits for this attempt."""
    started_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    upstream_cost: float | None = None
    """What this attempt cost the provider account, in gateway credits (1 ≈ $0.001): as the
    upstream reported it (PixelAPI ``credits_used``), else as its document prices the work;
    set once known, final when the job ends. ``None``: the upstream never had the task."""
    upstream_cost_reported: bool = False
    """``upstream_cost`` is the upstream's own figure, not the document's price."""


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
    """The most the job can cost: held from submission until it ends."""
    charged: int = 0
    """What the job was billed when it ended; the rest of the hold was refunded."""
    unit: str | None = None
    """The unit it is priced by: ``job``, ``output``, ``second``, ``1k_chars``, ``megapixel``."""
    rate: str | None = None
    """Credits per unit, as a decimal (``0.25``) or a fraction (``1/3``)."""
    quantity: float | None = None
    """Units reserved for, then units charged for once the job ended."""


class Measure(BaseModel):
    """What a request measures, taken at submission, for pricing by the unit."""

    chars: int | None = None
    """Characters of the text to speak."""
    seconds: float | None = None
    """Longest audio or video input, when it was read at submission."""
    requested_seconds: float | None = None
    """Duration the request asks to generate (``duration_s``)."""
    pixels: int | None = None
    """Largest image input, in pixels (width × height), when known at submission."""


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
    cache: Literal["hit", "miss"] | None = None
    """``hit``: served from the result of an earlier identical job (no upstream call);
    ``miss``: looked up and not found, and remembered once it succeeds."""
    queue_position: int | None = None
    """The job's place in a queue (1: next): before its task is sent, among the jobs waiting
    in the gateway for one of the provider's job slots; once sent, in the upstream's own
    queue, where the provider reports one (Everypixel). Null when it waits in neither."""
    upstream_eta_s: float | None = None
    """Seconds until the upstream expects the job to end, where the provider reports it."""
    credits: Credits = Field(default_factory=Credits)
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    links: JobLinks


class UpstreamTurn(BaseModel):
    """The job's turn upstream: the pool credential its current attempt runs on and, until the
    request reserved on that credential's budget is made, when it may go (the budget's
    ``Turn``)."""

    credential: int
    ready_at_ms: int | None = None
    """When set, a request reserved in the credential's budget that has not been made yet."""
    retaken: bool = False
    """The reserved request is the job's second turn, taken because it missed its first by more
    than the gateway allows (``app/jobs/gate.py``): it goes however late it is."""


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
    webhook_events: list[WebhookEvent] = Field(default_factory=lambda: [*DEFAULT_WEBHOOK_EVENTS])
    """The events ``callback_url`` is sent (the job's choice, else its tenant's)."""
    cache_key: str | None = None
    """Where the result cache remembers this job's result once it succeeds."""
    cache_ttl_s: int = 0
    cancel_at: datetime | None = None
    """The client's ``Cancel-After``: still unfinished then, the job ends canceled."""
    upstream: UpstreamTurn | None = None
    charge_accepted_work: bool = True
    """Charge the job when canceled or past its deadline after the upstream accepted its task
    (the tenant's policy, or the configured default, when the job was created)."""
    poll_streak: int = 0
    """Consecutive polls of the current attempt that did not read its state (backoff)."""
    measure: Measure | None = None
    """The request's measurements, for settling by the unit (and re-quoting on fallback)."""

    @property
    def current_attempt(self) -> Attempt | None:
        attempts = self.job.attempts
        return attempts[-1] if attempts else None
