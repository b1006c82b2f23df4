"""Request dependencies as ``Annotated`` aliases: the gateway, the calling tenant, waiting.

Authentication lives here; the tenant rules that come with it (rate limits, credit
reservation) each run as one Lua script in ``store/`` and hook in beside ``current_tenant``.
"""

from __future__ import annotations

import hmac
import math
import re
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import SANDBOX_TENANT_KEY
from app.domain.errors import Forbidden, RateLimited, Unauthenticated
from app.gateway import Gateway, gateway_of
from app.jobs.service import JobService
from app.store.tenants import Tenant

_bearer = HTTPBearer(
    auto_error=False, scheme_name="TenantKey", description="A tenant API key: `mg_live_…`."
)


# Dependencies are ``async`` even when they do not await: FastAPI runs plain functions on a
# thread pool, which costs more than the work they do.


async def get_gateway(request: Request) -> Gateway:
    return gateway_of(request.app)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def get_jobs(gateway: GatewayDep) -> JobService:
    return gateway.jobs


JobsDep = Annotated[JobService, Depends(get_jobs)]


async def current_tenant(
    request: Request,
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    if credentials is None:
        raise Unauthenticated("send your API key as 'Authorization: Bearer mg_live_…'")
    key = credentials.credentials
    if key == SANDBOX_TENANT_KEY and not gateway.settings.sandbox:
        raise Unauthenticated("the sandbox key works only in sandbox mode")
    caller = await gateway.tenants.authenticate(key)
    if caller is None:
        raise Unauthenticated("unknown or revoked API key")
    tenant = caller.tenant
    request.state.tenant_id = tenant.id  # for the request's log line
    if not tenant.active:
        raise Forbidden("this tenant is suspended")
    await _check_rate(gateway, tenant)
    return tenant


async def _check_rate(gateway: Gateway, tenant: Tenant) -> None:
    """GCRA over the tenant's requests per minute, exact across processes (Redis clock)."""
    rpm = tenant.rate_limit_rpm or gateway.settings.tenant_rate_limit_rpm
    burst = max(1, rpm // 6)  # ten seconds' worth
    decision = await gateway.rate_limiter.check(f"tenant:{{{tenant.id}}}", rpm, burst)
    if decision.allowed:
        return
    gateway.metrics.rate_limited.labels("tenant").inc()
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
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    token = gateway.settings.admin_token
    if token is None:
        raise Unauthenticated("the admin API is off: set MEDIAGATE_ADMIN_TOKEN")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise Unauthenticated("send the admin token as 'Authorization: Bearer …'")


_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)")


async def prefer_wait(
    gateway: GatewayDep,
    prefer: Annotated[
        str | None,
        Header(description="`wait=N` (1–60): answer 200 with the finished job if it ends in N s."),
    ] = None,
) -> float:
    """Seconds the client will wait for the job (RFC 7240 ``Prefer: wait``), 0 if none."""
    if not prefer:
        return 0
    match = _WAIT.search(prefer)
    if not match:
        return 0
    return float(min(max(int(match.group(1)), 0), gateway.settings.max_prefer_wait_s))


WaitDep = Annotated[float, Depends(prefer_wait)]

IdempotencyKeyDep = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Run this POST at most once; repeats replay the first response (24 h).",
    ),
]
"""Documents the header; ``api/idempotency.py`` reads and enforces it."""
