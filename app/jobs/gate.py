"""Whether an upstream call may go now: the provider's budget and its circuit breaker.

Before any upstream request the job reserves it in the provider's budget (``UpstreamBudgets``):
its turn names the pool credential and when the request may go. A near turn is waited out
here; a far one answers :class:`Requeue` (the job goes back into the due-queue until shortly
before it, and ``record.upstream`` remembers the turn), and a job whose provider runs no more
jobs at once waits in line for one of the credential's job slots: slots go to the waiting jobs
in the order they began to wait, and each learns its place (``Requeue.queue_position``, shown
on the job). A submission reserves as many requests as it makes
(``UpstreamLimit.requests_per_submit``); where an upstream drops a job that is not polled in
time, a credential runs only as many jobs as its rate keeps polled
(``UpstreamLimit.jobs_at_once``). A job's slot, or its place in line, is given back when it
ends or is canceled (:meth:`UpstreamGate.release`).

Where an upstream drops a task not polled in time, the worker watches how late it runs: while
the jobs it claims begin later than such an upstream's polls may be (a queue backed up behind
a machine short of CPU; :meth:`UpstreamGate.step_began`), or its polls of the upstream are
answered that late (an upstream slow to answer; :meth:`UpstreamGate.poll_done`), no new task
is submitted to that upstream (``Adapter.poll_lateness_s``). The tasks already running keep
the worker's time; the jobs kept back go behind the polls in the queue and are submitted once
the worker is on time again. However slow the machine, the tasks in flight are never more than
it keeps polled.

A reserved turn is kept to: a request that is about to go more than ``LATE_TURN_S`` past its
turn (the event loop or the machine stalled while it waited, or while its record was saved)
takes one new turn on the same credential instead (:meth:`UpstreamGate.on_time`). Requests that
went late together would reach the upstream closer together than its rate allows; the new turn
is spaced after every request reserved meanwhile. The turn left unspent costs the budget one
request, and only on a stall. A request goes on its second turn however late it is, so a
machine that runs late all the time still sends every request once. A poll of an upstream that
drops a task not polled in time (``Adapter.poll_lateness_s``) goes late rather than later: a
second wait in the budget could outlast the task, where a request over the rate is only
refused and asked again.

A submission also asks the provider's circuit (:meth:`UpstreamGate.circuit_refusal`); every
call's outcome is recorded against it (:meth:`UpstreamGate.record`). Polls are never refused
by the circuit: a task the upstream accepted is read until it ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import zlib
from dataclasses import dataclass

from redis.exceptions import RedisError

from app.domain.errors import ErrorCode
from app.domain.models import AttemptStatus, JobRecord, UpstreamTurn
from app.domain.operations import PARAMS
from app.metrics import Metrics
from app.providers.base import Adapter, Call, Failed, MediaSource
from app.providers.registry import ProviderRegistry
from app.store.circuits import Circuits
from app.store.jobs import now_ms
from app.store.upstream_budgets import Budget, UpstreamBudgets, Waiting

log = logging.getLogger(__name__)

RATE_MARGIN = 0.8
"""Share of a documented upstream rate the gateway uses: requests sent up to 250 ms late
(a busy event loop) still never make a one-second window exceed the documented rate."""
HEADROOM_REQUESTS = 3
HEADROOM_SHARE = 0.01
"""Over a limit counted across minutes, requests jobs leave unspent per window: 3, or 1 % of
the window's requests on a larger contract. Sign-ins and style listings (paced by the
catalog within it) and requests sent late cannot take a window over."""
INLINE_WAIT_S = 1.0
"""A reserved request at most this far off is waited for in the step; later ones requeue."""
EARLY_WAKE_S = 0.05
SLOTS_FULL_RETRY_S = 0.5
"""A job that gets no turn (every credential's job slots are taken) looks again after 1 to 2
times this."""
LATE_POLLS_PAUSE_S = 2.0
"""After a poll later than its upstream allows, new submissions to that upstream wait this
long (from the latest such poll); the jobs kept back look again after 1 to 2 times it."""
NEXT_IN_LINE_RETRY_S = 0.1
"""The job next in line asks again this soon, so that a freed slot does not stand idle."""
LATE_TURN_S = 0.1
"""A request further than this past its reserved turn when it is about to go takes a new turn
(:meth:`UpstreamGate.on_time`): ``RATE_MARGIN`` covers requests up to 250 ms late, so a late
turn taken again is never the one that takes a one-second window over."""


@dataclass(frozen=True)
class Go:
    """The request may go now, on this pool credential."""

    credential: int
    due: float | None = None
    """When its reserved turn fell due (``time.monotonic()``); None where no request was
    reserved, or for a turn already taken again."""


@dataclass(frozen=True)
class Requeue:
    """Not yet: save the job due again after ``after_s`` (``record.upstream`` is updated)."""

    after_s: float
    queue_position: int | None = None
    """Its place among the jobs waiting for one of the provider's job slots (1: next)."""


def upstream_call(
    record: JobRecord,
    media: MediaSource,
    credential: int,
    callback_url: str | None = None,
) -> Call:
    """The canonical call of the job's current attempt."""
    job = record.job
    return Call(
        job.id,
        job.operation,
        PARAMS[job.operation](**record.params),
        media,
        attempt=max(0, len(job.attempts) - 1),
        credential=credential,
        callback_url=callback_url,
    )


class UpstreamGate:
    def __init__(
        self,
        providers: ProviderRegistry,
        budgets: UpstreamBudgets,
        circuits: Circuits,
        metrics: Metrics,
    ) -> None:
        self.providers = providers
        self.budgets = budgets
        self.circuits = circuits
        self.metrics = metrics
        self._paused_until: dict[str, float] = {}
        """Per provider, until when (monotonic) its polls ran late: no new submission."""

    def budget(self, adapter: Adapter, record: JobRecord) -> Budget | None:
        binding = adapter.bindings[record.job.operation]
        limit = adapter.upstream_limit(binding.limit)
        if limit is None:
            return None
        rate = limit.usable_rate(RATE_MARGIN, HEADROOM_REQUESTS, HEADROOM_SHARE)
        own = adapter.credential_limits(binding.limit)
        rates = tuple(
            r.usable_rate(RATE_MARGIN, HEADROOM_REQUESTS, HEADROOM_SHARE) or 0 for r in own
        )
        if own and all(rates):
            rate = min(rates)
        egress = adapter.upstream_limit(adapter.egress_limit) if adapter.egress_limit else None
        egress_rate = (
            egress.usable_rate(RATE_MARGIN, HEADROOM_REQUESTS, HEADROOM_SHARE) if egress else None
        )
        return Budget(
            provider=adapter.name,
            limit=binding.limit,
            credentials=max(1, len(adapter.config.credentials)),
            rate_per_s=rate,
            concurrent_jobs=limit.jobs_at_once(rate),
            requests_per_submit=limit.requests_per_submit,
            egress_rate_per_s=egress_rate,
            egress_jobs=egress.jobs_at_once(egress_rate) if egress else None,
            credential_rates_per_s=rates if own and all(rates) else None,
        )

    async def clearance(self, record: JobRecord) -> Go | Requeue:
        """The credential to call the upstream with, once its budget allows the request; or
        how long to wait for it. ``record.upstream`` is set to the credential (saved before a
        submit goes out, so a resumed attempt polls, or resubmits idempotently, on the same
        account)."""
        adapter = self.providers[record.plan[0]]
        turn = record.upstream
        attempt = record.current_attempt
        polling = attempt is not None and attempt.status is AttemptStatus.running
        if not polling and self._polls_late(adapter.name):  # a job in line keeps its place
            self.metrics.rate_limited.labels("upstream").inc()
            after_s = LATE_POLLS_PAUSE_S * random.uniform(1, 2)
            return Requeue(after_s, record.job.queue_position)
        budget = self.budget(adapter, record)
        if budget is None:
            pool = len(adapter.config.credentials)
            if turn is None and pool > 1:
                turn = record.upstream = UpstreamTurn(
                    credential=zlib.crc32(record.job.id.encode()) % pool
                )
            return Go(turn.credential if turn is not None else 0)
        if turn is not None and turn.ready_at_ms is not None:
            wait_s = (turn.ready_at_ms - now_ms()) / 1000
            if wait_s > INLINE_WAIT_S:
                return Requeue(wait_s - EARLY_WAKE_S)
        else:
            bound = turn.credential if turn is not None else None
            granted = await self.budgets.reserve(
                budget, record.job.id, credential=bound, requests=self._cost(budget, polling)
            )
            if isinstance(granted, Waiting):
                self.metrics.rate_limited.labels("upstream").inc()
                retry_s = NEXT_IN_LINE_RETRY_S if granted.place == 1 else SLOTS_FULL_RETRY_S
                return Requeue(retry_s * random.uniform(1, 2), granted.place)
            wait_s = granted.wait_s
            turn = UpstreamTurn(credential=granted.credential)
            if wait_s > INLINE_WAIT_S:
                turn.ready_at_ms = now_ms() + int(wait_s * 1000)
                record.upstream = turn
                return Requeue(wait_s - EARLY_WAKE_S)
        return await self._go(record, turn.credential, wait_s, retaken=turn.retaken)

    async def on_time(self, record: JobRecord, go: Go) -> Go | Requeue:
        """Just before the request goes: ``go`` itself, or, when it is more than
        ``LATE_TURN_S`` past its turn, a new turn on the same credential (see the module
        docstring), waited for here when it is near, or a :class:`Requeue` until shortly
        before it (``record.upstream`` holds it, marked taken again)."""
        if go.due is None or time.monotonic() - go.due <= LATE_TURN_S:
            return go
        adapter = self.providers[record.plan[0]]
        attempt = record.current_attempt
        polling = attempt is not None and attempt.status is AttemptStatus.running
        if polling and adapter.poll_lateness_s is not None:
            return go  # its task is dropped unless polled in time: a later turn could lose it
        budget = self.budget(adapter, record)
        if budget is None:  # the limit is gone (configuration reloaded): nothing to keep
            return go
        granted = await self.budgets.reserve(
            budget, record.job.id, credential=go.credential, requests=self._cost(budget, polling)
        )
        self.metrics.rate_limited.labels("upstream_late").inc()
        if isinstance(granted, Waiting):  # not expected: its first turn took it a slot
            return Go(go.credential)
        if granted.wait_s > INLINE_WAIT_S:
            record.upstream = UpstreamTurn(
                credential=go.credential,
                ready_at_ms=now_ms() + int(granted.wait_s * 1000),
                retaken=True,
            )
            return Requeue(granted.wait_s - EARLY_WAKE_S)
        return await self._go(record, go.credential, granted.wait_s, retaken=True)

    @staticmethod
    def _cost(budget: Budget, polling: bool) -> int:
        return 1 if polling else budget.requests_per_submit

    @staticmethod
    async def _go(record: JobRecord, credential: int, wait_s: float, *, retaken: bool) -> Go:
        due = time.monotonic() + wait_s
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        record.upstream = UpstreamTurn(credential=credential)
        return Go(credential, None if retaken else due)

    def step_began(self, late_s: float) -> None:
        """A claimed job's step began ``late_s`` after it was due: the queue runs that late,
        and so would the polls of a task submitted now. Later than an upstream's
        ``poll_lateness_s``: new submissions to it wait (``LATE_POLLS_PAUSE_S``)."""
        for provider in self.providers:
            allowed = self.providers[provider].poll_lateness_s
            if allowed is not None and late_s > allowed:
                self._pause(provider)

    def poll_done(self, provider: str, late_s: float) -> None:
        """A poll of ``provider`` answered ``late_s`` after it was due. Later than the
        adapter's ``poll_lateness_s``: new submissions to it wait (``LATE_POLLS_PAUSE_S``)."""
        allowed = self.providers[provider].poll_lateness_s
        if allowed is not None and late_s > allowed:
            self._pause(provider)

    def _pause(self, provider: str) -> None:
        self._paused_until[provider] = time.monotonic() + LATE_POLLS_PAUSE_S

    def _polls_late(self, provider: str) -> bool:
        return time.monotonic() < self._paused_until.get(provider, 0.0)

    async def release(self, record: JobRecord) -> None:
        """Give back the job's concurrent-job slot upstream (it ended, or was canceled), or
        its place in line for one."""
        adapter = self.providers[record.plan[0]]
        budget = self.budget(adapter, record)
        if record.upstream is None:
            if budget is not None and (budget.concurrent_jobs or budget.egress_jobs):
                await self.budgets.leave_line(budget, record.job.id)
            return
        if budget is not None:
            await self.budgets.release(budget, record.job.id, record.upstream.credential)
        record.upstream = None

    async def circuit_refusal(self, provider: str, job_id: str) -> Failed | None:
        """A submission to a provider whose circuit is open is refused (retryable)."""
        allowed, state = await self.circuits.allow(provider, job_id)
        self.metrics.circuit(provider, state)
        if allowed:
            return None
        return Failed(
            ErrorCode.provider_unavailable,
            f"{provider} is failing; its circuit is {state.value.replace('_', '-')}",
            retryable=True,
        )

    async def record(self, provider: str, job_id: str, *, ok: bool) -> None:
        """Count a call's outcome against the provider's circuit. It comes between the
        upstream's answer and the save of what the upstream accepted, so it never fails the
        step: a store that does not answer (a Redis error) loses this one outcome, logged.
        The circuit is a ratio over a window, and a half-open probe whose outcome is lost
        passes to another job after ``probe_s``; a task id that is not saved is paid again."""
        try:
            state = await self.circuits.record(provider, job_id, ok=ok)
        except (RedisError, OSError) as exc:
            log.warning(
                "job %s: %s's circuit did not count its %s outcome (%s)",
                job_id,
                provider,
                "ok" if ok else "failed",
                exc,
            )
            return
        self.metrics.circuit(provider, state)
