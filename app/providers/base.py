"""The contract every provider adapter fulfils.

An adapter translates one canonical call into its provider's wire protocol and the provider's
answers back into four typed results. It knows nothing of FastAPI, tenants, credits or the
store: the worker drives it.

- ``submit(call)`` starts the work. A synchronous upstream answers ``Succeeded`` or ``Failed``
  at once; an asynchronous one answers ``Submitted`` with the upstream job id.
- ``poll(call, provider_job_id)`` asks an asynchronous upstream how the job is doing:
  ``Progress`` (ask again after ``poll_after_s``), ``Succeeded`` or ``Failed``.

Transport trouble (timeouts, refused connections, 5xx, bodies that do not parse) is raised as
:class:`~app.errors.UpstreamError` from the ``upstream_errors`` context manager in
``providers/_http.py``; outcomes the upstream reports about the work itself (no face found,
content blocked, invalid input) come back as ``Failed`` with a canonical code taken from the
adapter's one mapping table.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import httpx

from app.errors import ErrorCode
from app.jobs.media import MediaInput
from app.jobs.models import JSONValue
from app.jobs.operations import Operation, Params


@dataclass(frozen=True)
class Media:
    """Bytes of one media input, resolved by the gateway."""

    content: bytes
    content_type: str


class MediaSource(Protocol):
    """How an adapter reaches the job's media inputs (``url`` or ``file_id`` references)."""

    async def read(self, ref: MediaInput) -> Media:
        """The bytes of an input (downloaded, or read from the file store)."""
        ...

    def public_url(self, ref: MediaInput) -> str:
        """A URL the upstream can fetch: the client's own URL, or a signed gateway URL."""
        ...


@dataclass(frozen=True)
class Call:
    """One canonical call as an adapter sees it."""

    job_id: str
    operation: Operation
    params: Params
    media: MediaSource


@dataclass(frozen=True)
class OutputFile:
    content: bytes
    content_type: str


@dataclass(frozen=True)
class Submitted:
    provider_job_id: str
    poll_after_s: float = 1.0


@dataclass(frozen=True)
class Progress:
    fraction: float | None = None
    poll_after_s: float = 1.0


@dataclass(frozen=True)
class Succeeded:
    files: list[OutputFile] = field(default_factory=list)
    data: dict[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    code: ErrorCode
    message: str
    provider_code: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None


SubmitResult = Submitted | Succeeded | Failed
PollResult = Progress | Succeeded | Failed


@dataclass(frozen=True)
class Binding:
    """How one provider serves one operation: which canonical parameters it honours.

    ``values`` narrows a parameter to the values the provider accepts (``scale`` ∈ {4}).
    """

    parameters: frozenset[str]
    values: Mapping[str, frozenset[object]] = field(default_factory=dict)
    price: int = 1
    """Default price in gateway credits."""
    check: Callable[[Params], str | None] | None = None
    """Cross-field rule (``aspect`` only with the flux model): the refused parameter or None."""

    def refuses(self, params: Params) -> str | None:
        """The first parameter set by the client that this binding cannot honour."""
        for name in sorted(params.given()):
            if name not in self.parameters:
                return name
            allowed = self.values.get(name)
            if allowed is not None and getattr(params, name) not in allowed:
                return name
        return self.check(params) if self.check else None


class Adapter(ABC):
    """Base of the provider adapters. One instance per process, sharing one HTTP client."""

    name: ClassVar[str]
    bindings: ClassVar[Mapping[Operation, Binding]]

    def __init__(self, client: httpx.AsyncClient, config: AdapterConfig) -> None:
        self.client = client
        self.config = config
        self.base_url = config.base_url.rstrip("/")

    @abstractmethod
    async def submit(self, call: Call) -> SubmitResult: ...

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        raise NotImplementedError(f"{self.name} answers synchronously; nothing to poll")


@dataclass(frozen=True)
class AdapterConfig:
    """Where an adapter's upstream lives and how it signs in (secrets are never logged)."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    poll_interval_s: float = 2.0
    """Pause between status polls of an asynchronous upstream job."""
