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
from starlette.datastructures import Headers
from starlette.types import Scope

from app.config import MIN_SECRET_CHARS, SANDBOX_TENANT_KEY, admin_token
from app.domain.errors import Forbidden, GatewayError, RateLimited, Unauthenticated
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


async def caller_of(gateway: Gateway, key: str | None) -> Tenant:
    """The tenant whose API key this is; ``Unauthenticated`` when there is none."""
    if not key:
        raise Unauthenticated("send your API key as 'Authorization: Bearer mg_live_…'")
    if key == SANDBOX_TENANT_KEY and not gateway.settings.sandbox:
        raise Unauthenticated("the sandbox key works only in sandbox mode")
    caller = await gateway.tenants.authenticate(key)
    if caller is None:
        raise Unauthenticated("unknown or revoked API key")
    return caller.tenant


async def current_tenant(
    request: Request,
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    tenant = await caller_of(gateway, credentials.credentials if credentials else None)
    request.state.tenant_id = tenant.id  # for the request's log line
    if not tenant.active:
        raise Forbidden("this tenant is suspended")
    await _check_rate(gateway, tenant)
    return tenant


async def refuse_unknown_key(scope: Scope) -> GatewayError | None:
    """For the body limit (``app.api.body_limit``): why the request's tenant key is refused,
    checked before its body is read; None when the key belongs to an active tenant."""
    scheme, _, key = (Headers(scope=scope).get("authorization") or "").partition(" ")
    try:
        tenant = await caller_of(
            gateway_of(scope["app"]), key.strip() if scheme.lower() == "bearer" else None
        )
    except GatewayError as error:
        return error
    return None if tenant.active else Forbidden("this tenant is suspended")


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
    token = admin_token(gateway.settings)
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
    # More digits than six are more than any wait allowed (and never a huge int conversion).
    asked = int(match.group(1)) if not match.group(2) else gateway.settings.max_prefer_wait_s
    return float(min(asked, gateway.settings.max_prefer_wait_s))


WaitDep = Annotated[float, Depends(prefer_wait)]

IdempotencyKeyDep = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Run this POST at most once; repeats replay the first response (24 h).",
    ),
]
"""Documents the header; ``api/idempotency.py`` reads and enforces it."""
