"""The contract every provider adapter fulfils.

An adapter translates one canonical call into its provider's wire protocol and the provider's
answers back into four typed results. It knows nothing of FastAPI, tenants, credits or the
store: the worker drives it.

- ``submit(call)`` starts the work. A synchronous upstream answers ``Succeeded`` or ``Failed``
  at once; an asynchronous one answers ``Submitted`` with the upstream job id.
- ``poll(call, provider_job_id)`` asks an asynchronous upstream how the job is doing:
  ``Progress`` (ask again after ``poll_after_s``), ``Succeeded`` or ``Failed``.
  A poll answers ``Failed`` only on the upstream's own word that the task failed or no longer
  exists (a failure status, an unknown task id): the runner then retries or falls back. A
  poll that could not read the task's state (a 5xx, a 429, a timeout, a dropped connection,
  a body that does not parse, a result download that failed) raises ``UpstreamError`` or
  answers :class:`PollTrouble`, and the same task is polled again with backoff until the
  job's deadline: an accepted task is never abandoned, so it is never paid for twice. A
  status value an adapter does not know is logged with its raw value and read as running.

Transport trouble (timeouts, refused connections, 5xx, bodies that do not parse) is raised as
:class:`~app.domain.errors.UpstreamError` from the ``upstream_errors`` context manager in
``providers/_http.py``; outcomes the upstream reports about the work itself (no face found,
content blocked, invalid input) come back as ``Failed`` with a canonical code taken from the
adapter's one mapping table.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar, Protocol

import httpx

from app.domain.errors import ErrorCode
from app.domain.media import MediaInput
from app.domain.models import ConformedInput, JSONValue, UpstreamFile
from app.domain.operations import Operation, Params

if TYPE_CHECKING:
    from app.providers.media_limits import AvLimits


@dataclass(frozen=True)
class AsGiven:
    """A picture the gateway fitted before sending, as the client gave it: the pixel size it
    was stored at and the EXIF orientation (1–8) the fitting applied to those pixels."""

    width: int
    height: int
    orientation: int = 1


@dataclass(frozen=True)
class Media:
    """Bytes of one media input, resolved by the gateway."""

    content: bytes
    content_type: str
    upstream: UpstreamFile | None = field(default=None, compare=False)
    """Where an earlier job's output still lives upstream (an ``artifact_id`` input)."""
    given: AsGiven | None = field(default=None, compare=False)
    """A picture the gateway fitted (``_conform``): what it was as given, so that a mask drawn
    over it is laid on it as sent."""


class MediaSource(Protocol):
    """How an adapter reaches the job's media inputs (``url`` or ``file_id`` references)."""

    async def read(self, ref: MediaInput) -> Media:
        """The bytes of an input (downloaded, or read from the file store)."""
        ...

    def public_url(self, ref: MediaInput) -> str:
        """A URL the upstream can fetch: the client's own URL, or a signed gateway URL."""
        ...

    async def publish(self, media: Media) -> str:
        """A signed gateway URL the upstream can fetch ``media`` from: bytes the adapter made
        of an input (a conversion), kept as a file of the job's tenant for the files'
        retention."""
        ...


class AdapterState(Protocol):
    """Small shared state an adapter keeps across processes (tokens, request ids).

    Backed by Redis in the gateway, so every worker sees the same values and a worker that
    resumes another's job finds what it persisted. Keys are the adapter's own; the store
    prefixes them with the provider's name.
    """

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str, ttl_s: float, *, only_new: bool = False) -> bool:
        """Store ``value``; with ``only_new``, only when the key is absent (then True)."""
        ...

    async def incr(self, key: str) -> int:
        """Add one to a counter (starting at 0) and return the new value."""
        ...


@dataclass(frozen=True)
class Credential:
    """One account's secrets at a provider (several form a pool). Never logged."""

    api_key: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    plan: str | None = None
    """The account's plan where the provider sells several (PixelAPI); None: not said."""


@dataclass(frozen=True)
class Call:
    """One canonical call as an adapter sees it."""

    job_id: str
    operation: Operation
    params: Params
    media: MediaSource
    attempt: int = 0
    """Index of this attempt within the job: stable across a worker's crash and resume."""
    credential: int = 0
    """Which credential of the provider's pool this call uses (chosen by the upstream budget)."""
    callback_url: str | None = None
    """Where the upstream may POST completion, when the gateway has a public URL."""
    conformed: list[ConformedInput] = field(default_factory=list)
    """Inputs the adapter fitted to the provider's limits (recorded on the attempt)."""


@dataclass(frozen=True)
class OutputFile:
    content: bytes
    content_type: str
    upstream: UpstreamFile | None = field(default=None, compare=False)
    """The upstream's own copy, where it takes it again as an input (Perfect's ``dst_id``);
    bookkeeping, like ``cost``: outputs compare by their bytes."""


@dataclass(frozen=True)
class Submitted:
    provider_job_id: str
    poll_after_s: float = 1.0
    cost: float | None = field(default=None, compare=False)
    """What the upstream says the task costs its account (PixelAPI ``credits_used``), in its
    own credits; ``None`` when it does not say. Bookkeeping: results compare without it."""


@dataclass(frozen=True)
class Progress:
    fraction: float | None = None
    poll_after_s: float = 1.0
    queue_position: int | None = None
    """The task's place in the upstream's queue, where it reports one."""
    eta_s: float | None = None
    """Seconds until the upstream expects the task to end, where it reports it."""


@dataclass(frozen=True)
class Succeeded:
    files: list[OutputFile] = field(default_factory=list)
    data: dict[str, JSONValue] = field(default_factory=dict)
    cost: float | None = field(default=None, compare=False)
    """What the upstream reports the finished task cost, when it says (see ``Submitted``)."""


@dataclass(frozen=True)
class Failed:
    code: ErrorCode
    message: str
    provider_code: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    cost: float | None = field(default=None, compare=False)
    """What the upstream reports the failed task cost (PixelAPI: 0 for failed or blocked)."""
    unanswered: bool = False
    """A submission that went out whole and got no answer: the upstream may have accepted it."""


@dataclass(frozen=True)
class Voice:
    """A text-to-speech voice an upstream offers (``GET /v1/voices``)."""

    id: str
    language: str | None = None
    gender: str | None = None
    age: str | None = None


@dataclass(frozen=True)
class Style:
    """A predefined style of a styled operation (``GET /v1/styles``)."""

    id: str
    title: str | None = None
    group_id: str | None = None
    group_title: str | None = None
    thumbnail_url: str | None = None


@dataclass(frozen=True)
class StyleListing:
    styles: list[Style]
    next_token: str | None = None


@dataclass(frozen=True)
class ProviderBalance:
    """What is left on an upstream account, as the upstream reports it."""

    amount: float
    unit: str
    """``credits``, ``usd``, ``calls``… in the upstream's own terms."""


@dataclass(frozen=True)
class UpstreamModel:
    """One model or operation an upstream account offers, with its price where listed."""

    id: str
    endpoint: str | None = None
    credits: float | None = None


@dataclass(frozen=True)
class UpstreamJob:
    """One job of the upstream account's own history, as the upstream lists it."""

    id: str
    status: str | None = None
    operation: str | None = None
    model: str | None = None
    credits: float | None = None
    created_at: str | None = None
    output_url: str | None = None


@dataclass(frozen=True)
class UpstreamAccount:
    """What an upstream tells about the account itself: its models and its recent jobs."""

    models: list[UpstreamModel]
    recent_jobs: list[UpstreamJob]


@dataclass(frozen=True)
class PollTrouble:
    """A poll that did not learn how the task is doing (the upstream refused the read, e.g. a
    429 or an auth hiccup); the task is polled again, after ``retry_after_s`` when given."""

    message: str
    retry_after_s: float | None = None


def poll_trouble(failed: Failed) -> PollTrouble:
    """A refusal of a status read, which says nothing about the task itself."""
    return PollTrouble(failed.message, failed.retry_after_s)


SubmitResult = Submitted | Succeeded | Failed
PollResult = Progress | Succeeded | Failed | PollTrouble


@dataclass(frozen=True)
class Binding:
    """How one provider serves one operation: which canonical parameters it honours.

    ``values`` narrows a parameter to the values the provider accepts (``scale`` ∈ {4}).
    """

    parameters: frozenset[str]
    values: Mapping[str, frozenset[object]] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    """Parameters this provider needs though the operation does not (ImagePipeline's try-on
    ``gender``); a request without one is refused before anything is stored."""
    price: int = 1
    """Default price in gateway credits."""
    check: Callable[[Params], str | None] | None = None
    """Cross-field rule (``aspect`` only with the flux model): the refused parameter or None."""
    limit: str = "default"
    """Name of the adapter's :class:`UpstreamLimit` this binding's requests count against."""

    def refuses(self, params: Params) -> str | None:
        """The first parameter set by the client that this binding cannot honour."""
        for name in sorted(params.given()):
            if name not in self.parameters:
                return name
            allowed = self.values.get(name)
            if allowed is not None and getattr(params, name) not in allowed:
                return name
        return self.check(params) if self.check else None

    def lacks(self, params: Params) -> str | None:
        """The first parameter this binding requires that the client did not give."""
        return next(
            (name for name in sorted(self.required) if getattr(params, name, None) is None), None
        )

    def serves(self, params: Params) -> bool:
        return self.refuses(params) is None and self.lacks(params) is None


@dataclass(frozen=True)
class UpstreamLimit:
    """What one credential may spend at the upstream, from the provider's document."""

    rate_per_s: float | None = None
    """Requests per second (every submit and poll counts one)."""
    concurrent_jobs: int | None = None
    """Upstream jobs in flight at once (``1`` where the provider runs one at a time)."""
    requests_per_submit: int = 1
    """Requests a submission makes against the rate (Perfect: the file call and the task)."""
    poll_wait_s: float | None = None
    """Set where the upstream drops a job that is not polled in time (Perfect: 10 s): the
    longest a poll may wait for its turn in the budget. The jobs a credential runs at once are
    then capped so that a full queue of them still fits: ``rate × poll_wait_s`` requests."""
    window_s: float = 1.0
    """The span the document counts requests over (Perfect's per-IP limit: 5 minutes). Over
    a long window a few requests of headroom cover lateness; over a short one, a share."""

    def jobs_at_once(self, rate_per_s: float | None) -> int | None:
        """Jobs a credential may run at once, sending at ``rate_per_s``. Where the upstream
        drops a job not polled in time, no more than a queue of ``poll_wait_s`` worth of
        requests: every job holds at most one reservation (a submission's costing
        ``requests_per_submit``), so a poll never waits longer than that for its turn,
        however many jobs wait behind the slots."""
        if self.poll_wait_s is None or rate_per_s is None:
            return self.concurrent_jobs
        alive = max(1, math.floor(rate_per_s * self.poll_wait_s / self.requests_per_submit))
        return min(alive, self.concurrent_jobs or alive)

    def usable_rate(
        self, margin: float, headroom_requests: int, headroom_share: float = 0.0
    ) -> float | None:
        """The rate the gateway's jobs spend: ``margin`` of the documented one, or over a long
        window all of it but a headroom per window (``headroom_requests``, or
        ``headroom_share`` of the window's requests where that is more), whichever is more."""
        if self.rate_per_s is None:
            return None
        if self.window_s <= 1.0:
            return self.rate_per_s * margin
        allowed = self.rate_per_s * self.window_s
        headroom = max(headroom_requests, headroom_share * allowed)
        return max(self.rate_per_s * margin, (allowed - headroom) / self.window_s)

    def overridden(self, plan: UpstreamLimit) -> UpstreamLimit:
        """This limit with what a configured plan sets (its unset fields keep the document's)."""
        return replace(
            self,
            rate_per_s=plan.rate_per_s or self.rate_per_s,
            concurrent_jobs=plan.concurrent_jobs or self.concurrent_jobs,
        )


class Adapter(ABC):
    """Base of the provider adapters. One instance per process, sharing one HTTP client."""

    name: ClassVar[str]
    bindings: ClassVar[Mapping[Operation, Binding]]
    limits: ClassVar[Mapping[str, UpstreamLimit]] = {}
    """Per-credential budgets by name; bindings name the one they count against."""
    egress_limit: ClassVar[str | None] = None
    """The budget, among ``limits``, that every request from one egress address counts
    against, whatever the credential (Perfect's per-IP limit)."""
    fetches_inputs: ClassVar[bool] = False
    """The upstream reads every input from a public URL (the gateway signs its own files'
    URLs): it cannot serve while the gateway's public URL is loopback or private."""
    takes_callbacks: ClassVar[bool] = False
    """The upstream can POST to ``Call.callback_url`` when a job ends; the runner then gives
    submissions one (when upstream callbacks are on) so the job is polled at once."""
    media_limits: ClassVar[Mapping[Operation, Mapping[str, AvLimits]]] = {}
    """The audio and video each operation's inputs take, by input name, from the document
    (``app.providers.media_limits``); an input without a row takes the gateway's own."""
    max_poll_gap_s: ClassVar[float | None] = None
    """Set where the upstream drops a task that is not polled in time: the longest the runner
    waits between two polls, even while backing off from poll errors."""
    poll_lateness_s: ClassVar[float | None] = None
    """Set where the upstream drops a task that is not polled in time: how late a poll may go
    out (a busy worker, a slow answer) and still reach the task in time. While this worker's
    polls run later than that, it submits no new task to the upstream."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: AdapterConfig,
        state: AdapterState | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self._state = state
        self.base_url = config.base_url.rstrip("/")

    @property
    def state(self) -> AdapterState:
        """Shared state across processes; adapters that keep none are built without it."""
        if self._state is None:
            raise RuntimeError(f"the {self.name} adapter needs shared state (AdapterState)")
        return self._state

    def upstream_limit(self, name: str) -> UpstreamLimit | None:
        """The budget ``name``: the document's, or the configured plan's where it says so."""
        documented = self.limits.get(name)
        plan = self.config.limits.get(name)
        if plan is None:
            return documented
        return (documented or UpstreamLimit()).overridden(plan)

    def credential_limits(self, name: str) -> tuple[UpstreamLimit, ...]:
        """The budget ``name`` of each pool credential, where their plans differ (empty when
        every credential has :meth:`upstream_limit`)."""
        return ()

    def plans(self) -> list[str]:
        """The plan each pool credential is taken to be on, where the provider has plans
        (shown by ``GET /v1/providers``)."""
        return []

    def credential(self, call: Call) -> Credential:
        """The pool credential the call was given (the first when there is one)."""
        pool = self.config.credentials
        return pool[call.credential % len(pool)] if pool else Credential()

    def reads(self, operation: Operation, params: Params) -> list[MediaInput]:
        """The media inputs ``submit`` reads as bytes (``call.media.read``) rather than
        handing their URL to the upstream. The gateway fetches the URL ones among them
        before it takes the upstream's budget. By default, every input."""
        return list(params.media().values())

    @abstractmethod
    async def submit(self, call: Call) -> SubmitResult: ...

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        raise NotImplementedError(f"{self.name} answers synchronously; nothing to poll")

    async def cancel(self, call: Call, provider_job_id: str) -> bool:
        """Ask the upstream to stop a task the gateway no longer wants (a canceled job, one
        past its deadline); True when the upstream took the request. Only where the
        provider's document offers a way: none of the five documents does, so the default
        asks nothing."""
        return False

    # Catalog capabilities: adapters whose upstream offers them override these.

    async def balance(self) -> ProviderBalance | None:
        """The upstream account's remaining balance (first credential), when it tells."""
        return None

    async def account(self, recent: int) -> UpstreamAccount | None:
        """The upstream account's models and its ``recent`` newest jobs (first credential),
        where the upstream lists them."""
        return None

    async def voices(self) -> list[Voice]:
        """Text-to-speech voices, for ``audio.speech``."""
        return []

    async def styles(
        self,
        operation: Operation,
        variant: str | None,
        page_size: int,
        starting_token: str | None,
    ) -> StyleListing:
        """Predefined styles of a styled operation, one page at a time."""
        return StyleListing(styles=[])


@dataclass(frozen=True)
class AdapterConfig:
    """Where an adapter's upstream lives and how it signs in (secrets are never logged)."""

    base_url: str
    credentials: tuple[Credential, ...] = ()
    """The pool of accounts; a call names the one it uses (``Adapter.credential``)."""
    timeout_s: float = 60.0
    poll_interval_s: float = 2.0
    """Pause between status polls of an asynchronous upstream job."""
    limits: Mapping[str, UpstreamLimit] = field(default_factory=dict)
    """The account's plan where it differs from the document (``Adapter.upstream_limit``)."""
