"""The admin API (``Authorization: Bearer $MEDIAGATE_ADMIN_TOKEN``): tenants, keys, credits."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.api.deps import GatewayDep, require_admin
from app.api.problems import PROBLEM_RESPONSES
from app.errors import NotFound
from app.store.tenants import Tenant

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses=PROBLEM_RESPONSES,
    dependencies=[Depends(require_admin)],
)


class NewTenant(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    rate_limit_rpm: int | None = Field(default=None, ge=1, le=1_000_000)
    max_concurrent_jobs: int | None = Field(default=None, ge=1, le=100_000)


class TenantUpdate(BaseModel):
    status: Literal["active", "suspended"]


class TenantList(BaseModel):
    data: list[Tenant]
    next_cursor: str | None


class NewKey(BaseModel):
    id: str
    key: str = Field(description="The API key. Shown only this once; store it now.")
    tenant_id: str


@router.post("/tenants", name="admin_create_tenant", status_code=201)
async def create_tenant(body: NewTenant, gateway: GatewayDep) -> Tenant:
    return await gateway.tenants.create(
        body.name,
        rate_limit_rpm=body.rate_limit_rpm,
        max_concurrent_jobs=body.max_concurrent_jobs,
    )


@router.get("/tenants", name="admin_list_tenants")
async def list_tenants(
    gateway: GatewayDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> TenantList:
    tenants, next_cursor = await gateway.tenants.list(cursor=cursor, limit=limit)
    return TenantList(data=tenants, next_cursor=next_cursor)


@router.get("/tenants/{tenant_id}", name="admin_get_tenant")
async def get_tenant(tenant_id: str, gateway: GatewayDep) -> Tenant:
    tenant = await gateway.tenants.get(tenant_id)
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    return tenant


@router.patch("/tenants/{tenant_id}", name="admin_update_tenant")
async def update_tenant(tenant_id: str, body: TenantUpdate, gateway: GatewayDep) -> Tenant:
    """Suspend or reactivate a tenant; every process refuses its keys at once."""
    tenant = await gateway.tenants.set_status(tenant_id, body.status)
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    return tenant


@router.post("/tenants/{tenant_id}/keys", name="admin_create_key", status_code=201)
async def create_key(tenant_id: str, gateway: GatewayDep) -> NewKey:
    if await gateway.tenants.get(tenant_id) is None:
        raise NotFound("tenant", tenant_id)
    key_id, key = await gateway.tenants.add_key(tenant_id)
    return NewKey(id=key_id, key=key, tenant_id=tenant_id)


@router.delete("/keys/{key_id}", name="admin_revoke_key", status_code=204)
async def revoke_key(key_id: str, gateway: GatewayDep) -> None:
    if not await gateway.tenants.revoke_key(key_id):
        raise NotFound("key", key_id)
