"""Keeping what an upstream delivered: its outputs stored and the job saved succeeded, once.

**A result is paid for once.** Its outputs are written (to the disk or the object store) with
a write that meets a store error tried again for up to the lease, and the job is saved terminal
with a save tried again likewise. A result the upstream answered the submission with (Image
Pig; the synchronous calls of PixelAPI, Everypixel, ImagePipeline) has no task to read again,
so when its outputs cannot be stored the job ends ``failed`` (``store_unavailable``;
``internal_error`` for an error no retry mends; ``storage_quota_exceeded``) rather than being
submitted again: its attempt ends ``undelivered``, the tenant is not charged, and the upstream's
cost of the result is on the spend record. A result read from a task is read again instead, as
any poll that did not read it. A worker killed between the upstream's answer and the terminal
save leaves the attempt ``submitting``, as one killed during the call does: that attempt is
submitted again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from redis.exceptions import RedisError

from app.domain.errors import ErrorCode
from app.domain.models import JobOutput
from app.jobs.lifecycle import Lifecycle
from app.jobs.outputs import Outputs
from app.jobs.retries import tried_again
from app.jobs.storage import StorageQuotaExceeded
from app.providers.base import Failed, Succeeded
from app.store.jobs import SaveRefused, Stored
from app.store.storage import OutputUnscheduled, QuotaExceeded, ScheduledOutputs

log = logging.getLogger(__name__)


async def keep(
    lifecycle: Lifecycle,
    outputs: Outputs,
    stored: Stored,
    lease: str,
    result: Succeeded,
    *,
    within_s: float,
) -> Stored | Failed:
    """Keep what the upstream delivered: its outputs stored (:func:`store_outputs`) and the
    job saved succeeded, charged, each tried again for up to ``within_s`` (the lease); the
    saved state. Else why it cannot be kept (the tenant's storage quota, the output store),
    for the job to end failed with it: never for the attempt to be run again, which the
    upstream would bill again."""
    stored_outputs = await store_outputs(outputs, stored, result, within_s=within_s)
    if isinstance(stored_outputs, Failed):
        return stored_outputs
    output, written = stored_outputs
    if written is not None:  # bytes are under its id: its entry stays until kept
        stored.output = None
    try:
        return await lifecycle.succeed(stored, lease, output, written, within_s=within_s)
    except QuotaExceeded as exc:  # counted by the save: the output is not kept
        assert written is not None
        await outputs.discard(written)
        refused = StorageQuotaExceeded(exc.usage, exc.wanted)
        return Failed(refused.code, refused.detail)
    except OutputUnscheduled:  # a sweeper has it: it deletes the bytes
        message = "the output's place in the storage schedule lapsed; not kept"
        return Failed(ErrorCode.internal_error, message)
    except SaveRefused:  # ended meanwhile (a cancel): nothing keeps the output
        if written is not None:
            await outputs.discard(written)
        raise


async def store_outputs(
    outputs: Outputs, stored: Stored, result: Succeeded, *, within_s: float
) -> tuple[JobOutput, ScheduledOutputs | None] | Failed:
    """Store the outputs of ``result`` (``Outputs.store``). A write that fails (a full
    disk, an object store's 500) is tried again with a doubling pause for up to ``within_s``
    (the lease, renewed meanwhile), under the same reservation of the tenant's storage; a
    reservation that meets a Redis error is made again, for new ids (one applied whose answer
    was lost is given back when its retention ends, never counted twice).

    A result read from a task the upstream accepted can be read again: a write that still
    fails raises, and the job's next step polls the task again. A result the upstream
    answered the submission with cannot: its attempt has no task id, and left
    ``submitting`` it would be submitted, and paid for, again. So its write that still
    fails, or fails with any other error, is a failure of the job (``store_unavailable``,
    ``internal_error``), and so is the tenant's storage quota
    (``storage_quota_exceeded``), at any attempt."""
    record = stored.record
    job_id = record.job.id
    from_submission = record.job.attempts[-1].provider_job_id is None
    scheduled = stored.output

    def store() -> Awaitable[tuple[JobOutput, ScheduledOutputs | None]]:
        return outputs.store(record.tenant_id, result, scheduled, within_s=within_s)

    try:
        return await tried_again(
            store,
            within_s=within_s,
            what="reserving storage for its output",
            about=job_id,
            errors=(RedisError,),
        )
    except StorageQuotaExceeded as exc:  # the tenant keeps too much already
        return Failed(exc.code, exc.detail)
    except (RedisError, OSError) as exc:
        if not from_submission:
            raise
        log.error("job %s: its upstream's result could not be stored (%s)", job_id, exc)
        # the job's creation scheduled the deletion of what a write under its id left
        stored.output = None
        message = "the upstream's result could not be stored; the job is not charged"
        return Failed(ErrorCode.store_unavailable, message, retryable=True)
    except Exception:
        if not from_submission:
            raise
        log.exception("job %s: its upstream's result could not be stored", job_id)
        stored.output = None
        message = "the upstream's result could not be kept; the job is not charged"
        return Failed(ErrorCode.internal_error, message)
