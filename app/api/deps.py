"""Request dependencies as ``Annotated`` aliases: the gateway, the calling tenant, waiting.

Authentication lives here; the tenant rules that come with it (rate limits, credit
reservation) each run as one Lua script in ``store/`` and hook in beside ``current_tenant``.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import SANDBOX_TENANT_KEY
from app.errors import Unauthenticated
from app.gateway import Gateway, gateway_of
from app.jobs.service import JobService
from app.store.tenants import Tenant

_bearer = HTTPBearer(auto_error=False, description="A tenant API key: `mg_live_…`.")


# Dependencies are ``async`` even when they do not await: FastAPI runs plain functions on a
# thread pool, which costs more than the work they do.


async def get_gateway(request: Request) -> Gateway:
    return gateway_of(request.app)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def get_jobs(gateway: GatewayDep) -> JobService:
    return gateway.jobs


JobsDep = Annotated[JobService, Depends(get_jobs)]


async def current_tenant(
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    if credentials is None:
        raise Unauthenticated("send your API key as 'Authorization: Bearer mg_live_…'")
    key = credentials.credentials
    if key == SANDBOX_TENANT_KEY and not gateway.settings.sandbox:
        raise Unauthenticated("the sandbox key works only in sandbox mode")
    tenant = await gateway.tenants.authenticate(key)
    if tenant is None:
        raise Unauthenticated("unknown or revoked API key")
    if not tenant.active:
        raise Unauthenticated("this tenant is suspended")
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]

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
