"""Jobs canceled while their submission was under way, awaiting the upstream's answer.

A client's cancel of a job whose worker is sending its submission (the lease held, the attempt
``submitting``) cannot know whether the upstream accepts the task. The cancel ends the job
(``canceled``) and leaves what the answer decides open: the credit hold, the upstream-spend
record, the webhook, the worker's lease and the job's place among the leases. The job is
marked ``awaiting`` in its hash. The worker records the answer and settles all of it in one
script, once; a worker that died meanwhile leaves its lease to lapse, and the one that claims
the job (``claim_jobs.lua`` hands out a finished job only when it awaits) settles it without an
answer. Both scripts refuse rather than write when the job is not as the caller holds it.
"""

from __future__ import annotations

from redis.exceptions import ResponseError

from app.store import keys
from app.store.credits import pricing_args
from app.store.jobs import (
    SETTLED_HOLD_TTL_S,
    SPEND_MAX_LEN,
    Charge,
    SaveRefused,
    Settle,
    Stored,
    settle_reason,
    webhook_delivery,
)
from app.store.scripts import Scripts


class AwaitingAnswers:
    def __init__(self, scripts: Scripts, *, retention_s: int) -> None:
        self.scripts = scripts
        self.retention_s = retention_s

    async def cancel(self, stored: Stored) -> Stored:
        """Save ``stored.record`` (canceled) while its submission is under way, held by the
        worker under ``stored.lease``, the job awaiting the upstream's answer
        (``cancel_under_way.lua``): the tenant's job slot is given back, nothing else is
        settled. ``SaveRefused`` when the job moved, ended or is held under another lease
        (or none) since it was read."""
        record = stored.record
        job = record.job
        assert stored.lease is not None and job.status.terminal
        try:
            version = await self.scripts.cancel_under_way(
                keys=[keys.job(job.id), keys.tenant_job_slots(record.tenant_id)],
                args=[
                    stored.version,
                    stored.lease,
                    record.model_dump_json(),
                    job.status.value,
                    self.retention_s,
                    keys.job_events(job.id),
                    job.id,
                ],
            )
        except ResponseError as exc:
            raise SaveRefused(str(exc)) from exc
        return Stored(record, int(version))

    async def settle(
        self, stored: Stored, lease: str, settle: Settle, charge: Charge | None, spend: str
    ) -> Stored:
        """Write ``stored.record`` (a job awaiting its submission's answer, the answer now on
        it) and settle what its cancel left open, once (``settle_late_answer.lua``): the
        credit hold is charged ``charge`` or released, ``spend`` is appended to the
        upstream-spend stream, the job's webhook is queued, the lease ends.
        ``SaveRefused`` when nothing awaits an answer any more (``answered``) or another lease
        holds the job (``lease_lost``)."""
        record = stored.record
        job = record.job
        webhook_due, webhook = webhook_delivery(record, None)
        try:
            version, settled = await self.scripts.settle_late_answer(
                keys=[
                    keys.job(job.id),
                    keys.DUE,
                    keys.LEASES,
                    *keys.credit_hold_keys(record.tenant_id, job.id),
                    keys.WEBHOOKS_DUE,
                    keys.SPEND,
                ],
                args=[
                    lease,
                    record.model_dump_json(),
                    job.id,
                    settle.value,
                    settle_reason(job),
                    SETTLED_HOLD_TTL_S,
                    "" if charge is None else charge.amount,
                    *pricing_args(charge.pricing if charge is not None else None),
                    spend,
                    SPEND_MAX_LEN,
                    webhook_due,
                    webhook,
                    keys.job_events(job.id),
                    job.status.value,
                ],
            )
        except ResponseError as exc:
            raise SaveRefused(str(exc)) from exc
        if settle is Settle.charge:
            job.credits.charged = int(settled)
        return Stored(record, int(version))
