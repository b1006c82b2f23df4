"""Request dependencies as ``Annotated`` aliases: the services a route uses, the calling
tenant, waiting.

A route asks for the few services it uses (``TenantsDep``, ``CatalogDep``…), never for the
whole process: the API knows the parts it needs by :class:`Services`, which the composition
(``app.gateway.Gateway``) provides, and nothing of how they are built.

Authentication lives here; the tenant rules that come with it (rate limits, credit
reservation) each run as one Lua script in ``store/`` and hook in beside ``current_tenant``.
"""

from __future__ import annotations

import hmac
import math
import re
from typing import Annotated, Protocol

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.datastructures import Headers
from starlette.types import Scope

from app.blobs import BlobStore
from app.config import MIN_SECRET_CHARS, SANDBOX_TENANT_KEY, Settings, admin_token
from app.domain.errors import (
    Forbidden,
    GatewayError,
    InvalidRequest,
    RateLimited,
    StoreUnavailable,
    Unauthenticated,
)
from app.jobs.accounting import Accounting
from app.jobs.batches import BatchService
from app.jobs.catalog import Catalog
from app.jobs.service import JobService
from app.jobs.storage import Storage
from app.jobs.upstream_callbacks import UpstreamCallbacks
from app.metrics import Metrics
from app.signing import UrlSigner
from app.store.files import FileIndex
from app.store.idempotency import IdempotencyStore
from app.store.rate_limits import (
    ConcurrencySlots,
    Decision,
    RateCheck,
    RateLimiter,
    RateRefused,
)
from app.store.tenants import Tenant, TenantStore
from app.store.webhooks import WebhookStore
from app.store.workers import WorkerPresence

_bearer = HTTPBearer(
    auto_error=False, scheme_name="TenantKey", description="A tenant API key: `mg_live_…`."
)


# Dependencies are ``async`` even when they do not await: FastAPI runs plain functions on a
# thread pool, which costs more than the work they do.


class Services(Protocol):
    """The parts of the process the API uses, by name (``app.gateway.Gateway`` has them)."""

    settings: Settings
    metrics: Metrics
    jobs: JobService
    tenants: TenantStore
    accounting: Accounting
    catalog: Catalog
    files: FileIndex
    blobs: BlobStore
    signer: UrlSigner
    rate_limiter: RateLimiter
    idempotency: IdempotencyStore
    webhooks: WebhookStore
    upstream_callbacks: UpstreamCallbacks
    workers: WorkerPresence
    batches: BatchService
    storage: Storage
    slots: ConcurrencySlots


def services_of(request: Request) -> Services:
    """The services the composition put on the application at start-up."""
    services: Services = request.app.state.gateway
    return services


async def get_settings(request: Request) -> Settings:
    return services_of(request).settings


async def get_metrics(request: Request) -> Metrics:
    return services_of(request).metrics


async def get_jobs(request: Request) -> JobService:
    return services_of(request).jobs


async def get_tenants(request: Request) -> TenantStore:
    return services_of(request).tenants


async def get_accounting(request: Request) -> Accounting:
    return services_of(request).accounting


async def get_catalog(request: Request) -> Catalog:
    return services_of(request).catalog


async def get_files(request: Request) -> FileIndex:
    return services_of(request).files


async def get_blobs(request: Request) -> BlobStore:
    return services_of(request).blobs


async def get_signer(request: Request) -> UrlSigner:
    return services_of(request).signer


async def get_idempotency(request: Request) -> IdempotencyStore:
    return services_of(request).idempotency


async def get_webhooks(request: Request) -> WebhookStore:
    return services_of(request).webhooks


async def get_upstream_callbacks(request: Request) -> UpstreamCallbacks:
    return services_of(request).upstream_callbacks


async def get_batches(request: Request) -> BatchService:
    return services_of(request).batches


async def get_workers(request: Request) -> WorkerPresence:
    return services_of(request).workers


async def get_storage(request: Request) -> Storage:
    return services_of(request).storage


async def get_slots(request: Request) -> ConcurrencySlots:
    return services_of(request).slots


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
BatchesDep = Annotated[BatchService, Depends(get_batches)]
TenantsDep = Annotated[TenantStore, Depends(get_tenants)]
AccountingDep = Annotated[Accounting, Depends(get_accounting)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
FilesDep = Annotated[FileIndex, Depends(get_files)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
SignerDep = Annotated[UrlSigner, Depends(get_signer)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(get_idempotency)]
WebhooksDep = Annotated[WebhookStore, Depends(get_webhooks)]
UpstreamCallbacksDep = Annotated[UpstreamCallbacks, Depends(get_upstream_callbacks)]
StorageDep = Annotated[Storage, Depends(get_storage)]
SlotsDep = Annotated[ConcurrencySlots, Depends(get_slots)]
WorkersDep = Annotated[WorkerPresence, Depends(get_workers)]


async def caller_of(settings: Settings, tenants: TenantStore, key: str | None) -> Tenant:
    """The tenant whose API key this is; ``Unauthenticated`` when there is none."""
    if not key:
        raise Unauthenticated("send your API key as 'Authorization: Bearer mg_live_…'")
    if key == SANDBOX_TENANT_KEY and not settings.sandbox:
        raise Unauthenticated("the sandbox key works only in sandbox mode")
    caller = await tenants.authenticate(key)
    if caller is None:
        raise Unauthenticated("unknown or revoked API key")
    return caller.tenant


def bearer_key(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, read as ``HTTPBearer`` reads it."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


async def active_caller(services: Services, key: str | None) -> Tenant:
    """The active tenant of this key (``Unauthenticated``, ``Forbidden`` otherwise)."""
    tenant = await caller_of(services.settings, services.tenants, key)
    if not tenant.active:
        raise Forbidden("this tenant is suspended")
    return tenant


async def current_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    # The services come from the request, not as dependencies of their own: every
    # sub-dependency costs FastAPI's solver more than the lookup it makes (see bench.cpu).
    services = services_of(request)
    key = credentials.credentials if credentials else None
    tenant = await caller_of(services.settings, services.tenants, key)
    request.state.tenant_id = tenant.id  # for the request's log line
    if not tenant.active:
        raise Forbidden("this tenant is suspended")
    await check_rate(services, tenant)
    return tenant


async def refuse_unknown_key(scope: Scope) -> GatewayError | None:
    """For the body limit (``app.api.body_limit``): why the request's tenant key is refused,
    checked before its body is read; None when the key belongs to an active tenant."""
    scheme, _, key = (Headers(scope=scope).get("authorization") or "").partition(" ")
    services: Services = scope["app"].state.gateway
    try:
        tenant = await caller_of(
            services.settings,
            services.tenants,
            key.strip() if scheme.lower() == "bearer" else None,
        )
    except GatewayError as error:
        return error
    except (RedisConnectionError, RedisTimeoutError):
        unavailable = StoreUnavailable()
        unavailable.headers = {"Retry-After": "1"}
        return unavailable
    return None if tenant.active else Forbidden("this tenant is suspended")


def _tenant_rate(services: Services, tenant: Tenant) -> tuple[str, int, int]:
    rpm = tenant.rate_limit_rpm or services.settings.tenant_rate_limit_rpm
    return f"tenant:{{{tenant.id}}}", rpm, max(1, rpm // 6)  # a burst of ten seconds' worth


async def check_rate(services: Services, tenant: Tenant) -> None:
    """GCRA over the tenant's requests per minute, exact across processes (Redis clock)."""
    key, rpm, burst = _tenant_rate(services, tenant)
    refuse_over_rate(services, rpm, await services.rate_limiter.check(key, rpm, burst))


def rate_check_of(services: Services, tenant: Tenant) -> RateCheck:
    """:func:`check_rate` left to the script that creates the request's job (the fast lane):
    refused there, ``refuse_over_rate`` answers it."""
    key, rpm, burst = _tenant_rate(services, tenant)
    return RateCheck(key, rpm, burst)


def answer_rate_refused(services: Services, rate: RateCheck, refused: RateRefused) -> None:
    """Raise the 429 for a rate check that went with a script (``rate_check_of``) and was
    refused there: the same answer as :func:`check_rate`'s."""
    refuse_over_rate(services, int(rate.rate_per_minute), refused.decision)


def refuse_over_rate(services: Services, rpm: int, decision: Decision) -> None:
    if decision.allowed:
        return
    services.metrics.rate_limited.labels("tenant").inc()
    retry = max(1, math.ceil(decision.retry_after_s))
    raise RateLimited(
        f"more than {rpm} requests per minute; retry in {retry} s",
        {
            "Retry-After": str(retry),
            "RateLimit-Policy": f'"requests";q={rpm};w=60',
            "RateLimit": f'"requests";r={decision.remaining};t={math.ceil(decision.reset_s)}',
        },
    )


TenantDep = Annotated[Tenant, Depends(current_tenant)]

_admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="`MEDIAGATE_ADMIN_TOKEN`."
)


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    token = admin_token(settings)
    if token is None:
        raise Unauthenticated(
            f"the admin API is off: set MEDIAGATE_ADMIN_TOKEN (at least {MIN_SECRET_CHARS} "
            "characters)"
        )
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthenticated("send the admin token as 'Authorization: Bearer …'")


_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*0*(\d{1,6})(\d*)")


async def prefer_wait(
    request: Request,
    prefer: Annotated[
        str | None,
        Header(description="`wait=N` (1–60): answer 200 with the finished job if it ends in N s."),
    ] = None,
) -> float:
    """Seconds the client will wait for the job (RFC 7240 ``Prefer: wait``), 0 if none."""
    return wait_seconds(prefer, services_of(request).settings)


def wait_seconds(prefer: str | None, settings: Settings) -> float:
    """``Prefer: wait=N`` as seconds, at most ``max_prefer_wait_s``; 0 without it."""
    if not prefer:
        return 0
    match = _WAIT.search(prefer)
    if not match:
        return 0
    # More digits than six are more than any wait allowed (and never a huge int conversion).
    asked = int(match.group(1)) if not match.group(2) else settings.max_prefer_wait_s
    return float(min(asked, settings.max_prefer_wait_s))


WaitDep = Annotated[float, Depends(prefer_wait)]

_SECONDS = re.compile(r"\s*(\d{1,7})(?:\.(\d{1,3}))?\s*")
MAX_CANCEL_AFTER_S = 7 * 86400


async def cancel_after(
    value: Annotated[
        str | None,
        Header(
            alias="Cancel-After",
            description="Seconds (up to 3 decimals, at most a week): a job still unfinished "
            "by then is canceled, charged as a cancel is.",
        ),
    ] = None,
) -> float | None:
    """The client's deadline for the job (as Replicate names it), in seconds; None if none."""
    return cancel_after_seconds(value)


def cancel_after_seconds(value: str | None) -> float | None:
    """``Cancel-After`` as seconds; ``InvalidRequest`` (400) when it is not one."""
    if value is None:
        return None
    match = _SECONDS.fullmatch(value)
    seconds = float(f"{match.group(1)}.{match.group(2) or 0}") if match else 0.0
    if not 0 < seconds <= MAX_CANCEL_AFTER_S:
        raise InvalidRequest(
            f"Cancel-After must be a number of seconds above 0 and at most {MAX_CANCEL_AFTER_S}",
            pointer="/headers/Cancel-After",
            status=400,
        )
    return seconds


CancelAfterDep = Annotated[float | None, Depends(cancel_after)]

CacheControlDep = Annotated[
    str | None,
    Header(
        alias="Cache-Control",
        description="`no-cache`: run the job even if an identical one's result is at hand; "
        "`no-store`: neither use nor keep results; `max-age=N`: accept a result at most N s "
        "old (and cache a generation without a seed).",
    ),
]

IdempotencyKeyDep = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Run this POST at most once; repeats replay the first response (24 h).",
    ),
]
"""Documents and reads the header; ``api/idempotency.py`` enforces it."""
