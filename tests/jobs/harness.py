"""The job core on a real Redis with scripted adapters: the runner, the lifecycle and the job
service built as the gateway builds them, and upstreams that answer what a test scripts."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.blobs import LocalBlobStore
from app.domain.models import JobRecord
from app.domain.operations import GenerateImage, Operation
from app.jobs.accounting import Accounting
from app.jobs.envelope import Envelope
from app.jobs.events import EventHub
from app.jobs.gate import UpstreamGate
from app.jobs.lifecycle import Lifecycle
from app.jobs.media_source import StoredMedia
from app.jobs.outputs import Outputs
from app.jobs.prices import PriceBook
from app.jobs.render import JobRenderer
from app.jobs.runner import Deadlines, JobRunner
from app.jobs.service import JobService
from app.jobs.storage import Retention, Storage
from app.metrics import Metrics
from app.providers.base import (
    Adapter,
    AdapterConfig,
    Binding,
    Call,
    OutputFile,
    PollResult,
    PollTrouble,
    Progress,
    SubmitResult,
    Submitted,
    Succeeded,
)
from app.providers.registry import ProviderRegistry
from app.safe_urls import UrlPolicy
from app.signing import UrlSigner
from app.store.circuits import CircuitPolicy, Circuits
from app.store.credits import CreditLedger
from app.store.files import FileIndex
from app.store.jobs import JobStore, SaveRefused, Stored
from app.store.notifications import Notifications
from app.store.scripts import Scripts
from app.store.storage import StorageLedger
from app.store.tenants import Tenant
from app.store.upstream_budgets import UpstreamBudgets
from tests.utils.media import png_bytes

ALPHA_PRICE = 10
BETA_PRICE = 15
TENANT = Tenant(id="ten_lifecycle", name="lifecycle")
WAIT_S = 10.0
"""The longest a helper waits for a job to come due (generous; never a speed claim)."""
STEPS = 10
"""More steps than a job submitted, polled and ended takes."""

Answer = SubmitResult | PollResult | Exception


def picture() -> Succeeded:
    return Succeeded(files=[OutputFile(png_bytes(8, 8), "image/png")])


class Scripted(Adapter):
    """An upstream that answers, in order, what the test queued (then: done at once)."""

    name: ClassVar[str] = "scripted"
    bindings: ClassVar[Mapping[Operation, Binding]] = {}

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(httpx.AsyncClient(), config)
        self.submits: deque[Answer] = deque()
        self.polls: deque[Answer] = deque()
        self.submitted: list[Call] = []
        self.polled: list[str] = []
        self.canceled: list[str] = []

    async def submit(self, call: Call) -> SubmitResult:
        self.submitted.append(call)
        default = Submitted(f"{self.name}_task_{len(self.submitted)}", poll_after_s=0)
        answer = self.submits.popleft() if self.submits else default
        if isinstance(answer, Exception):
            raise answer
        assert not isinstance(answer, Progress | PollTrouble)
        return answer

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        self.polled.append(provider_job_id)
        answer = self.polls.popleft() if self.polls else picture()
        if isinstance(answer, Exception):
            raise answer
        assert not isinstance(answer, Submitted)
        return answer

    async def cancel(self, call: Call, provider_job_id: str) -> bool:
        self.canceled.append(provider_job_id)
        return True


class Alpha(Scripted):
    name: ClassVar[str] = "alpha"
    bindings: ClassVar[Mapping[Operation, Binding]] = {
        Operation.image_generate: Binding(
            parameters=frozenset({"prompt", "seed", "width", "style_id"}), price=ALPHA_PRICE
        )
    }


class Beta(Scripted):
    name: ClassVar[str] = "beta"
    bindings: ClassVar[Mapping[Operation, Binding]] = {
        Operation.image_generate: Binding(
            parameters=frozenset({"prompt", "seed", "style_id"}),
            required=frozenset({"style_id"}),
            price=BETA_PRICE,
        )
    }


@dataclass
class Core:
    redis: Redis
    store: JobStore
    ledger: CreditLedger
    runner: JobRunner
    lifecycle: Lifecycle
    service: JobService
    alpha: Alpha
    beta: Beta
    metrics: Metrics
    storage: Storage

    async def submit(
        self,
        provider: str | None = "alpha",
        fallback: list[str] | None = None,
        tenant: Tenant = TENANT,
        **params: object,
    ) -> str:
        """A created job (``image.generate``), as the API would create it."""
        job = await self.service.submit(
            tenant,
            Operation.image_generate,
            GenerateImage.model_validate({"prompt": "a lighthouse", **params}),
            Envelope(provider=provider, fallback=fallback),
        )
        return job.id

    async def claim(self, job_id: str) -> Stored:
        """The job leased to this test once it is due (other due jobs are put back)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while loop.time() < deadline:
            found = None
            for stored in await self.store.claim(10, 30):
                if stored.record.job.id == job_id:
                    found = stored
                else:
                    assert stored.lease is not None
                    await self.store.renew(stored.record.job.id, stored.lease, 0)
            if found is not None:
                return found
            await asyncio.sleep(0.01)
        raise AssertionError(f"job {job_id} never came due")

    async def step(self, job_id: str) -> JobRecord:
        return (await self.runner.step(await self.claim(job_id))).record

    async def record(self, job_id: str) -> JobRecord:
        stored = await self.store.get(job_id)
        assert stored is not None
        return stored.record

    async def gate_failure(self, provider: str = "alpha") -> None:
        """One failed upstream call recorded against the provider's circuit."""
        self.failures = getattr(self, "failures", 0) + 1
        await self.runner.gate.record(provider, f"job_other_{self.failures}", ok=False)

    async def available(self) -> int:
        return (await self.ledger.account(TENANT.id)).available


async def run_as_worker(core: Core, job_id: str) -> tuple[JobRecord, list[Exception]]:
    """Step the job as a worker does until it ends: a step that raises a Redis error or an
    ``OSError`` (the store or the disk away) hands its job back (``Worker._hand_back``); the
    errors the steps raised, in order."""
    errors: list[Exception] = []
    for _ in range(STEPS):
        stored = await core.claim(job_id)
        assert stored.lease is not None
        try:
            record = (await core.runner.step(stored)).record
        except (RedisError, OSError, SaveRefused) as exc:
            errors.append(exc)
            if not isinstance(exc, SaveRefused):
                await core.store.renew(job_id, stored.lease, 0)
            record = await core.record(job_id)
            if not record.job.status.terminal:
                continue
        if record.job.status.terminal:
            return record, errors
    raise AssertionError(f"job {job_id} did not end in {STEPS} steps")


@asynccontextmanager
async def job_core(
    redis: Redis,
    tmp_path: Path,
    *,
    credits: int = 1000,
    charge_accepted_work: bool = True,
    deadlines: Deadlines | None = None,
    circuit: CircuitPolicy | None = None,
    storage_quota_bytes: int = 1 << 30,
) -> AsyncIterator[Core]:
    """The job core over ``redis`` (already flushed), with ``credits`` granted to TENANT."""
    scripts = Scripts.register(redis)
    config = AdapterConfig(base_url="http://upstream.invalid", poll_interval_s=0.01)
    alpha, beta = Alpha(config), Beta(config)
    providers = ProviderRegistry({"alpha": alpha, "beta": beta}, {})
    store = JobStore(redis, scripts, retention_s=3600)
    files = FileIndex(redis, file_ttl_s=3600, artifact_ttl_s=3600)
    blobs = LocalBlobStore(tmp_path / "blobs")
    signer = UrlSigner(b"k" * 32, "http://gateway.test", 3600)
    metrics = Metrics(CollectorRegistry())
    ledger = CreditLedger(redis, scripts)
    accounting = Accounting(ledger, PriceBook(redis, providers, {}), default_max_concurrent_jobs=50)
    circuits = Circuits(redis, scripts, circuit or CircuitPolicy())
    gate = UpstreamGate(providers, UpstreamBudgets(redis, scripts), circuits, metrics)
    ledger_of_bytes = StorageLedger(redis, scripts, quota_bytes=storage_quota_bytes)
    storage = Storage(blobs, files, ledger_of_bytes, Retention(3600, 3600))
    async with httpx.AsyncClient() as http:
        media = StoredMedia(files, blobs, signer, http, 1 << 20)
        lifecycle = Lifecycle(store, accounting, gate, media, metrics)
        runner = JobRunner(
            store, providers, gate, lifecycle, Outputs(storage), metrics, 30, deadlines
        )
        service = JobService(
            store,
            providers,
            runner,
            EventHub(Notifications(redis), []),
            files,
            blobs,
            JobRenderer(signer),
            accounting,
            url_policy=UrlPolicy([]),
            max_media_bytes=1 << 20,
            lease_s=30,
            charge_accepted_work=charge_accepted_work,
            storage=storage,
        )
        await ledger.grant(TENANT.id, credits, "test")
        yield Core(redis, store, ledger, runner, lifecycle, service, alpha, beta, metrics, storage)
        await alpha.client.aclose()
        await beta.client.aclose()
