"""A batch: many requests of one operation, run as ordinary jobs and followed as one.

Items start in order, each as a job of its own that reserves its credits when it starts, so a
batch never needs its whole cost up front. An item that cannot become a job (refused media, a
provider that cannot serve it) ends ``failed`` with that problem; a tenant out of credits ends
every item not yet started ``failed`` with ``insufficient_credits``; a cancel ends the items
not yet started ``canceled`` and cancels the running jobs. The batch is ``completed`` when
every item has ended, and its ``callback_url`` then gets one ``batch.completed`` webhook.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from app.domain.errors import ErrorCode
from app.domain.models import JobStatus, JSONValue
from app.domain.operations import Operation

MAX_ITEMS = 10_000


def new_batch_id() -> str:
    stamp = int(time.time() * 1000)
    return f"batch_{stamp:012x}{os.urandom(8).hex()}"


class BatchStatus(StrEnum):
    running = "running"
    """Items are starting or running."""
    canceling = "canceling"
    """Canceled; the jobs already running are being canceled."""
    completed = "completed"
    """Every item has ended (``counts`` says how)."""


class BatchCounts(BaseModel):
    """Items by where they are; the counts always add up to ``total``."""

    pending: int = 0
    """Not started yet."""
    running: int = 0
    """Started as a job that has not ended."""
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0


class BatchLinks(BaseModel):
    self: str
    jobs: str
    cancel: str


class Batch(BaseModel):
    """A batch as clients see it."""

    id: str
    object: str = "batch"
    operation: Operation
    status: BatchStatus
    total: int
    counts: BatchCounts
    progress: float
    """Share of items that have ended, 0 to 1."""
    metadata: dict[str, JSONValue] = Field(default_factory=dict)
    created_at: datetime
    completed_at: datetime | None = None
    links: BatchLinks


class ItemError(BaseModel):
    code: ErrorCode
    message: str


class BatchItem(BaseModel):
    """One item of a batch: its job once started, or why it never became one."""

    index: int
    status: JobStatus | None
    """The job's status; ``None`` while the item waits to start."""
    job_id: str | None = None
    error: ItemError | None = None
    """Why the item never became a job (or, for a job, why it failed)."""


class BatchItemPage(BaseModel):
    object: str = "list"
    data: list[BatchItem]
    next_cursor: str | None = None
