"""The parts of one gateway process, built once and shared by requests and the worker."""

from __future__ import annotations

import gc
import secrets
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
from redis.asyncio import Redis
from starlette.applications import Starlette

from app.blobs import BlobStore, open_blob_store
from app.config import DOCUMENTED_SECONDS_PER_MEDIA_SECOND, SANDBOX_TENANT_KEY, Settings
from app.jobs.accounting import Accounting
from app.jobs.batches import BatchDriver, BatchService
from app.jobs.catalog import Catalog
from app.jobs.doorbell import Doorbell
from app.jobs.events import EventHub
from app.jobs.gate import UpstreamGate
from app.jobs.lifecycle import Lifecycle
from app.jobs.media_source import FetchLimits, StoredMedia
from app.jobs.outputs import Outputs
from app.jobs.prices import PriceBook
from app.jobs.render import JobRenderer
from app.jobs.result_cache import ResultCache
from app.jobs.runner import Deadlines, JobRunner
from app.jobs.service import JobService
from app.jobs.storage import Retention, Storage, Sweeper
from app.jobs.upstream_callbacks import CallbackTokens, UpstreamCallbacks
from app.metrics import Metrics
from app.providers.base import Credential
from app.providers.registry import ProviderRegistry
from app.safe_urls import UrlPolicy, guarded_client
from app.sandbox.credentials import sandbox_credentials
from app.signing import UrlSigner
from app.store.batches import BatchStore
from app.store.catalog_cache import CatalogCache
from app.store.circuits import CircuitPolicy, Circuits
from app.store.connection import ReplicaWait
from app.store.credits import CreditLedger
from app.store.embedded import EmbeddedRedis, socket_url
from app.store.files import FileIndex
from app.store.idempotency import IdempotencyStore, lock_for
from app.store.jobs import JobStore
from app.store.notifications import Notifications
from app.store.rate_limits import ConcurrencySlots, RateLimiter
from app.store.result_cache import ResultCacheStore
from app.store.scripts import Scripts
from app.store.storage import StorageLedger
from app.store.tenants import TenantStore
from app.store.upstream_budgets import UpstreamBudgets
from app.store.webhooks import WebhookStore
from app.store.workers import WorkerPresence
from app.webhooks import BatchMessages, Message, WebhookSender, envelope
from app.worker import Worker

SANDBOX_TENANT_ID = "sandbox"
SANDBOX_CREDITS = 1_000_000
SANDBOX_RATE_LIMIT_RPM = 1_000_000
SANDBOX_MAX_CONCURRENT_JOBS = 100_000


@dataclass(kw_only=True)
class Gateway:
    """Everything a request or a worker needs, built once per process (by name only)."""

    settings: Settings
    redis: Redis
    http: httpx.AsyncClient
    metrics: Metrics
    jobs: JobService
    tenants: TenantStore
    files: FileIndex
    blobs: BlobStore
    signer: UrlSigner
    worker: Worker
    accounting: Accounting
    rate_limiter: RateLimiter
    idempotency: IdempotencyStore
    catalog: Catalog
    user_http: httpx.AsyncClient
    """The client for media URLs users give: checked against SSRF on connect."""
    webhooks: WebhookStore
    upstream_callbacks: UpstreamCallbacks
    """Callback URLs given to upstreams, and what a callback that lands does."""
    workers: WorkerPresence
    """Workers' heartbeats: readiness counts the live ones."""
    batches: BatchService
    storage: Storage
    """Bytes kept per tenant (quota) and their retention."""
    slots: ConcurrencySlots
    """Concurrency slots shared by every process (a tenant's media fetches, event streams)."""
    webhook_http: httpx.AsyncClient
    """The guarded client webhook deliveries use: a pool apart from media fetches, so hanging
    receivers cannot take the connections media URLs need."""

    async def aclose(self) -> None:
        await self.user_http.aclose()
        await self.webhook_http.aclose()


def freeze_heap() -> None:
    """Once a long-running process has started: collect the garbage of start-up, then move
    every object still alive (the app, its routes and models, clients, compiled schemas) out
    of the collector's generations (``gc.freeze``). They live as long as the process, and
    each full collection no longer walks them again: about 6 % of a synchronous request's
    CPU (``bench.cpu``). For ``mediagate serve`` and ``mediagate worker`` only, not an app
    built in a test process, where everything alive at that moment would stay uncollected."""
    gc.collect()
    gc.freeze()


def emulator_credentials(provider: str) -> tuple[Credential, ...]:
    """Sandbox mode: the test credentials each emulator accepts."""
    return tuple(Credential(**c) for c in sandbox_credentials(provider))


def signing_key(settings: Settings) -> bytes:
    """The configured key, or one generated once and kept under the data dir."""
    if settings.signing_key is not None:
        return settings.signing_key.get_secret_value().encode()
    path = settings.data_dir / "signing.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


async def build_gateway(
    settings: Settings, redis: Redis, http: httpx.AsyncClient, metrics: Metrics
) -> Gateway:
    scripts = Scripts.register(redis)
    store = JobStore(
        redis,
        scripts,
        retention_s=settings.job_retention_s,
        replica_wait=ReplicaWait(settings.redis_wait_replicas, settings.redis_wait_timeout_ms),
    )
    files = FileIndex(
        redis, file_ttl_s=settings.file_retention_s, artifact_ttl_s=settings.output_retention
    )
    blobs = open_blob_store(
        settings.blob_url,
        settings.data_dir,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_presign_endpoint_url=settings.s3_presign_endpoint_url,
    )
    ledger = StorageLedger(redis, scripts, quota_bytes=settings.tenant_storage_quota_bytes)
    storage = Storage(
        blobs, files, ledger, Retention(settings.file_retention_s, settings.output_retention)
    )
    key = signing_key(settings)
    signer = UrlSigner(key, settings.public_base_url, settings.artifact_url_ttl_s)
    providers = ProviderRegistry.from_settings(
        settings, http, redis, sandbox_credentials=emulator_credentials
    )
    url_policy = UrlPolicy(settings.url_allowlist)
    user_http = guarded_client(url_policy)
    slots = ConcurrencySlots(redis, scripts)
    fetch_limits = FetchLimits(
        timeout_s=settings.media_fetch_timeout_s,
        min_rate_bps=settings.media_fetch_min_rate_bps,
        grace_s=settings.media_fetch_grace_s,
        per_tenant=settings.tenant_max_concurrent_fetches,
    )
    media = StoredMedia(
        files,
        blobs,
        signer,
        user_http,
        settings.max_media_bytes,
        limits=fetch_limits,
        slots=slots,
        storage=storage,
    )
    configured_prices = {
        op.value: {str(provider): credits for provider, credits in by.items()}
        for op, by in settings.prices.items()
    }
    prices = PriceBook(redis, providers, configured_prices)
    accounting = Accounting(
        CreditLedger(redis, scripts),
        prices,
        default_max_concurrent_jobs=settings.tenant_max_concurrent_jobs,
    )
    budgets = UpstreamBudgets(redis, scripts)
    circuits = Circuits(
        redis,
        scripts,
        CircuitPolicy(
            failure_ratio=settings.circuit.failure_ratio,
            min_requests=settings.circuit.min_requests,
            window_s=settings.circuit.window_s,
            open_s=settings.circuit.open_s,
        ),
    )
    callbacks = UpstreamCallbacks(
        CallbackTokens(key),
        store,
        settings.public_base_url,
        [name for name, adapter in providers.items() if adapter.takes_callbacks],
    )
    gate = UpstreamGate(providers, budgets, circuits, metrics)
    cache = ResultCache(
        ResultCacheStore(redis),
        store,
        blobs,
        metrics,
        default_ttl_s=settings.result_cache_ttl_s,
        default_hit_percent=settings.cache_hit_percent,
    )
    lifecycle = Lifecycle(store, accounting, gate, media, metrics, cache)
    runner = JobRunner(
        store,
        providers,
        gate,
        lifecycle,
        Outputs(storage),
        metrics,
        settings.lease_s,
        Deadlines(
            settings.job_deadline_s,
            {op.value: s for op, s in settings.deadlines().items()},
            {op.value: r for op, r in DOCUMENTED_SECONDS_PER_MEDIA_SECOND.items()},
        ),
        callback_url=callbacks.url if settings.upstream_callbacks_on else None,
    )
    pepper = settings.key_pepper.get_secret_value().encode() if settings.key_pepper else b""
    tenants = TenantStore(redis, scripts, pepper=pepper)
    events = EventHub(Notifications(redis), [tenants, prices, circuits])
    renderer = JobRenderer(signer)
    doorbell = Doorbell()
    jobs = JobService(
        store,
        providers,
        runner,
        events,
        files,
        blobs,
        renderer,
        accounting,
        url_policy=url_policy,
        max_media_bytes=settings.max_media_bytes,
        lease_s=settings.lease_s,
        charge_accepted_work=settings.charge_accepted_work,
        storage=storage,
        cache=cache,
        doorbell=doorbell,
    )
    webhooks = WebhookStore(redis, scripts, retention_s=settings.job_retention_s)
    webhook_http = guarded_client(url_policy)
    batch_store = BatchStore(redis, scripts, retention_s=settings.job_retention_s)
    batches = BatchService(batch_store, jobs)
    sender = WebhookSender(
        store,
        webhooks,
        webhook_http,
        renderer.record,
        settings.webhook_retry_schedule_s,
        concurrency=settings.webhook_concurrency,
        per_endpoint=settings.webhook_endpoint_concurrency,
        per_tenant=settings.webhook_tenant_concurrency,
        timeout_s=settings.webhook_timeout_s,
        batches=batch_messages(batches),
    )
    presence = WorkerPresence(redis)
    worker = Worker(
        store,
        runner,
        metrics,
        concurrency=settings.worker_concurrency,
        lease_s=settings.lease_s,
        webhooks=sender,
        presence=presence,
        batches=BatchDriver(batch_store, jobs, tenants, window=settings.batch_window),
        sweeper=Sweeper(ledger, blobs, metrics, settings.storage_sweep_interval_s),
        doorbell=doorbell,
    )
    limiter = RateLimiter(redis, scripts)
    return Gateway(
        settings=settings,
        redis=redis,
        http=http,
        metrics=metrics,
        jobs=jobs,
        tenants=tenants,
        files=files,
        blobs=blobs,
        signer=signer,
        worker=worker,
        accounting=accounting,
        rate_limiter=limiter,
        idempotency=IdempotencyStore(redis, scripts, lock_s=lock_for(settings.max_prefer_wait_s)),
        catalog=Catalog(CatalogCache(redis), providers, prices, circuits, limiter),
        user_http=user_http,
        webhooks=webhooks,
        upstream_callbacks=callbacks,
        workers=presence,
        batches=batches,
        storage=storage,
        slots=slots,
        webhook_http=webhook_http,
    )


def batch_messages(batches: BatchService) -> BatchMessages:
    """A completed batch's one webhook: ``batch.completed`` with the batch as its data."""

    async def message(batch_id: str) -> Message | None:
        completed = await batches.completion(batch_id)
        if completed is None:
            return None
        tenant_id, url, batch = completed
        event = "batch.completed"
        return Message(tenant_id, url, event, f"msg_{batch_id}_completed", envelope(event, batch))

    return message


def redis_url(settings: Settings, stack: AsyncExitStack, *, embed: bool) -> str:
    """The configured Redis, or the embedded one (started here when ``embed``)."""
    if settings.redis_url:
        return settings.redis_url
    if not embed:
        return socket_url(settings.data_dir)
    server = EmbeddedRedis(settings.data_dir)
    url = server.start()
    stack.callback(server.stop)
    return url


async def seed(gateway: Gateway) -> None:
    """Sandbox mode: the tenant of the README's walk-through, with its key and credits."""
    if gateway.settings.sandbox:
        tenants = gateway.tenants
        await tenants.create(
            "sandbox",
            tenant_id=SANDBOX_TENANT_ID,
            rate_limit_rpm=SANDBOX_RATE_LIMIT_RPM,
            max_concurrent_jobs=SANDBOX_MAX_CONCURRENT_JOBS,
        )
        await tenants.ensure_key(SANDBOX_TENANT_ID, SANDBOX_TENANT_KEY)
        ledger = gateway.accounting.ledger
        if not await tenants.first_seed(SANDBOX_TENANT_ID):
            return
        await ledger.grant(SANDBOX_TENANT_ID, SANDBOX_CREDITS, "sandbox seed")
    else:
        await gateway.tenants.remove_key(SANDBOX_TENANT_KEY)


def gateway_of(app: Starlette) -> Gateway:
    gateway = app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway
