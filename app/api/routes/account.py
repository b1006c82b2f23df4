"""The calling tenant's balance, limits and credit history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.deps import AccountingDep, SettingsDep, StorageDep, TenantDep
from app.api.operation_ids import operation_id
from app.api.problems import PROBLEM_RESPONSES
from app.domain.errors import InvalidRequest
from app.domain.models import DEFAULT_WEBHOOK_EVENTS, WebhookEvent
from app.store.credits import LedgerEntry, LedgerKind

router = APIRouter(
    generate_unique_id_function=operation_id,
    prefix="/v1",
    tags=["account"],
    responses=PROBLEM_RESPONSES,
)


class Limits(BaseModel):
    rate_limit_rpm: int
    max_concurrent_jobs: int


class StorageUsage(BaseModel):
    used_bytes: int
    """Files and outputs kept now; given back as their retention ends."""
    quota_bytes: int
    """Beyond it, uploads and outputs are refused with 413 storage_quota_exceeded."""


class Account(BaseModel):
    tenant_id: str
    name: str
    balance: int
    reserved: int
    """Held for unfinished jobs."""
    available: int
    limits: Limits
    storage: StorageUsage
    webhook_events: list[WebhookEvent]
    """The events a job's callback URL gets unless the job chooses."""
    result_cache: ResultCachePolicy


class ResultCachePolicy(BaseModel):
    ttl_s: int
    """How long a job's result serves the same request again (0: never)."""
    hit_percent: int
    """Share of the price a result served from the cache costs."""


class UsagePage(BaseModel):
    data: list[LedgerEntry]
    next_cursor: str | None


@router.get("/account", name="get_account")
async def get_account(
    tenant: TenantDep, accounting: AccountingDep, settings: SettingsDep, storage: StorageDep
) -> Account:
    credits = await accounting.ledger.account(tenant.id)
    usage = await storage.usage(tenant.id)
    return Account(
        tenant_id=tenant.id,
        name=tenant.name,
        balance=credits.balance,
        reserved=credits.reserved,
        available=credits.available,
        limits=Limits(
            rate_limit_rpm=tenant.rate_limit_rpm or settings.tenant_rate_limit_rpm,
            max_concurrent_jobs=tenant.max_concurrent_jobs or settings.tenant_max_concurrent_jobs,
        ),
        storage=StorageUsage(used_bytes=usage.used_bytes, quota_bytes=usage.quota_bytes),
        webhook_events=tenant.webhook_events or list(DEFAULT_WEBHOOK_EVENTS),
        result_cache=ResultCachePolicy(
            ttl_s=_or(tenant.result_cache_ttl_s, settings.result_cache_ttl_s),
            hit_percent=_or(tenant.cache_hit_percent, settings.cache_hit_percent),
        ),
    )


def _or(own: int | None, default: int) -> int:
    return default if own is None else own


@router.get("/usage", name="list_usage")
async def list_usage(
    tenant: TenantDep,
    accounting: AccountingDep,
    kind: LedgerKind | None = None,
    job_id: str | None = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> UsagePage:
    """Every credit movement, newest first: grants, holds, charges, releases."""
    try:
        entries, next_cursor = await accounting.ledger.entries(
            tenant.id, cursor=cursor, limit=limit, kind=kind, job_id=job_id
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc), pointer="/cursor", status=400) from exc
    return UsagePage(data=entries, next_cursor=next_cursor)
