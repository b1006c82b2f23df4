"""The admin API (``Authorization: Bearer $MEDIAGATE_ADMIN_TOKEN``): tenants, keys, credits,
prices, providers and the reconciliation of upstream spend with tenant charges."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import AccountingDep, CatalogDep, TenantsDep, WebhooksDep, require_admin
from app.api.operation_ids import operation_id
from app.api.problems import PROBLEM_RESPONSES
from app.domain.errors import FieldError, InvalidRequest, NotFound, UpstreamError
from app.domain.models import WebhookEvent
from app.jobs.accounting import InsufficientCredits
from app.jobs.catalog import ProviderInfo
from app.jobs.prices import Price
from app.jobs.reconcile import Reconciliation, as_utc, reconcile
from app.store.credits import MAX_BALANCE, BalanceTooLarge, CreditsShort
from app.store.tenants import Tenant, TenantPolicy

router = APIRouter(
    generate_unique_id_function=operation_id,
    prefix="/admin",
    tags=["admin"],
    responses=PROBLEM_RESPONSES,
    dependencies=[Depends(require_admin)],
)


class TenantChoices(BaseModel):
    """A tenant's own policy, beside its limits; null: the gateway's default applies (on an
    update: left as it is)."""

    charge_accepted_work: bool | None = Field(
        default=None,
        description="Charge jobs canceled or past their deadline once the upstream accepted "
        "their task; null: the gateway's default (`charge_accepted_work`).",
    )
    webhook_events: list[WebhookEvent] | None = Field(
        default=None,
        min_length=1,
        description="The events its jobs' callback URLs get unless a job chooses.",
    )
    result_cache_ttl_s: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86400,
        description="How long a job's result serves the same request again (0: never); null: "
        "the gateway's default (`result_cache_ttl_s`).",
    )
    cache_hit_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Share of the price a cached result costs (0: free); null: the gateway's "
        "default (`cache_hit_percent`).",
    )
    storage_quota_bytes: int | None = Field(
        default=None,
        ge=0,
        le=2**53,
        description="Bytes of uploads and outputs the tenant keeps at once (what it keeps "
        "already stays; new files are refused while it is over); null: the gateway's default "
        "(`tenant_storage_quota_bytes`).",
    )

    def policy(self) -> TenantPolicy:
        return TenantPolicy(
            webhook_events=self.webhook_events,
            result_cache_ttl_s=self.result_cache_ttl_s,
            cache_hit_percent=self.cache_hit_percent,
            storage_quota_bytes=self.storage_quota_bytes,
        )


class NewTenant(TenantChoices):
    name: str = Field(min_length=1, max_length=200)
    rate_limit_rpm: int | None = Field(default=None, ge=1, le=1_000_000)
    max_concurrent_jobs: int | None = Field(default=None, ge=1, le=100_000)


class TenantUpdate(TenantChoices):
    status: Literal["active", "suspended"] | None = None


class TenantList(BaseModel):
    data: list[Tenant]
    next_cursor: str | None


class NewKey(BaseModel):
    id: str
    key: str = Field(description="The API key. Shown only this once; store it now.")
    tenant_id: str


@router.post("/tenants", name="admin_create_tenant", status_code=201)
async def create_tenant(body: NewTenant, tenants: TenantsDep) -> Tenant:
    return await tenants.create(
        body.name,
        rate_limit_rpm=body.rate_limit_rpm,
        max_concurrent_jobs=body.max_concurrent_jobs,
        charge_accepted_work=body.charge_accepted_work,
        policy=body.policy(),
    )


@router.get("/tenants", name="admin_list_tenants")
async def list_tenants(
    tenants: TenantsDep,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,9}$", description="`next_cursor` of the last page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> TenantList:
    page, next_cursor = await tenants.list(cursor=cursor, limit=limit)
    return TenantList(data=page, next_cursor=next_cursor)


@router.get("/tenants/{tenant_id}", name="admin_get_tenant")
async def get_tenant(tenant_id: str, tenants: TenantsDep) -> Tenant:
    tenant = await tenants.get(tenant_id)
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    return tenant


@router.patch("/tenants/{tenant_id}", name="admin_update_tenant")
async def update_tenant(tenant_id: str, body: TenantUpdate, tenants: TenantsDep) -> Tenant:
    """Suspend or reactivate a tenant (every process refuses its keys at once), set its
    policy for work the upstream accepted before a cancel or a deadline, or its storage
    quota."""
    tenant = await tenants.update(
        tenant_id,
        status=body.status,
        charge_accepted_work=body.charge_accepted_work,
        policy=body.policy(),
    )
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    return tenant


@router.post("/tenants/{tenant_id}/keys", name="admin_create_key", status_code=201)
async def create_key(tenant_id: str, tenants: TenantsDep) -> NewKey:
    if await tenants.get(tenant_id) is None:
        raise NotFound("tenant", tenant_id)
    key_id, key = await tenants.add_key(tenant_id)
    return NewKey(id=key_id, key=key, tenant_id=tenant_id)


class WebhookSecret(BaseModel):
    tenant_id: str
    secret: str
    """``whsec_…``: verify the ``webhook-signature`` of this tenant's webhooks with it."""


@router.get("/tenants/{tenant_id}/webhook-secret", name="admin_get_webhook_secret")
async def get_webhook_secret(
    tenant_id: str, tenants: TenantsDep, webhooks: WebhooksDep
) -> WebhookSecret:
    if await tenants.get(tenant_id) is None:
        raise NotFound("tenant", tenant_id)
    return WebhookSecret(tenant_id=tenant_id, secret=await webhooks.secret(tenant_id))


@router.post("/tenants/{tenant_id}/webhook-secret", name="admin_rotate_webhook_secret")
async def rotate_webhook_secret(
    tenant_id: str, tenants: TenantsDep, webhooks: WebhooksDep
) -> WebhookSecret:
    """Replace the tenant's webhook signing secret; deliveries from now on use the new one."""
    if await tenants.get(tenant_id) is None:
        raise NotFound("tenant", tenant_id)
    secret = await webhooks.rotate_secret(tenant_id)
    return WebhookSecret(tenant_id=tenant_id, secret=secret)


@router.delete("/keys/{key_id}", name="admin_revoke_key", status_code=204)
async def revoke_key(key_id: str, tenants: TenantsDep) -> None:
    if not await tenants.revoke_key(key_id):
        raise NotFound("key", key_id)


class CreditMovement(BaseModel):
    amount: int = Field(
        ge=-MAX_BALANCE,
        le=MAX_BALANCE,
        description="Positive grants, negative debits.",
        examples=[1000],
    )
    reason: str = Field(min_length=1, max_length=200)


class CreditBalance(BaseModel):
    tenant_id: str
    balance: int
    reserved: int
    available: int


class PriceTable(BaseModel):
    data: list[Price]


class PriceOverride(BaseModel):
    """A flat price (``credits``) or a rule by the unit (``unit``, ``rate``, ``cap``)."""

    model_config = ConfigDict(extra="forbid")

    operation: str = Field(examples=["audio.speech"])
    provider: str = Field(examples=["everypixel"])
    credits: int | None = Field(default=None, ge=0, le=1_000_000, description="Flat price.")
    unit: str | None = Field(
        default=None,
        description="job, output, second, 1k_chars or megapixel",
        examples=["1k_chars"],
    )
    rate: int | float | str | None = Field(
        default=None, description="Credits per unit: `4`, `0.25` or `1/3`.", examples=["4"]
    )
    cap: int | None = Field(default=None, description="Units assumed when unknown; billed at most.")

    def rule(self) -> object:
        if self.credits is not None:
            if self.unit is not None or self.rate is not None or self.cap is not None:
                raise InvalidRequest(
                    "give either credits (a flat price) or unit and rate", pointer="/credits"
                )
            return self.credits
        if self.rate is None:
            raise InvalidRequest("a price needs credits, or a unit and a rate", pointer="/rate")
        rule: dict[str, object] = {"rate": self.rate}
        if self.unit is not None:
            rule["unit"] = self.unit
        if self.cap is not None:
            rule["cap"] = self.cap
        return rule


class UpstreamBalance(BaseModel):
    amount: float
    unit: str
    """In the upstream's own terms: ``credits``, ``usd``…"""


class ProviderState(ProviderInfo):
    balance: UpstreamBalance | None = None
    """What the upstream account has left (first credential), when the upstream tells."""
    balance_error: str | None = None


class AdminProviderList(BaseModel):
    data: list[ProviderState]


class UpstreamModelInfo(BaseModel):
    id: str
    endpoint: str | None = None
    credits: float | None = None
    """Its price in the upstream's own credits, as the upstream lists it."""


class UpstreamJobInfo(BaseModel):
    id: str
    """The upstream's own job id (an attempt's ``provider_job_id``)."""
    status: str | None = None
    operation: str | None = None
    model: str | None = None
    credits: float | None = None
    created_at: str | None = None
    output_url: str | None = None


class UpstreamView(BaseModel):
    """What the provider's account (first credential) says of itself, where it tells."""

    provider: str
    balance: UpstreamBalance | None = None
    models: list[UpstreamModelInfo] | None = None
    """Models and operations the account offers, with their prices; null where the upstream
    lists none."""
    recent_jobs: list[UpstreamJobInfo] | None = None
    """The account's newest jobs, newest first, in the upstream's own terms."""
    error: str | None = None
    """Why the upstream could not be read (the rest is then what was read before it)."""


@router.post("/tenants/{tenant_id}/credits", name="admin_move_credits")
async def move_credits(
    tenant_id: str, body: CreditMovement, tenants: TenantsDep, accounting: AccountingDep
) -> CreditBalance:
    """Grant (positive) or debit (negative) credits; every movement is in the ledger."""
    if await tenants.get(tenant_id) is None:
        raise NotFound("tenant", tenant_id)
    ledger = accounting.ledger
    if body.amount == 0:
        raise InvalidRequest("amount must not be zero", pointer="/amount")
    try:
        if body.amount > 0:
            account = await ledger.grant(tenant_id, body.amount, body.reason)
        else:
            account = await ledger.debit(tenant_id, -body.amount, body.reason)
    except CreditsShort as exc:
        short = InsufficientCredits(exc.required, exc.available)
        short.errors = [FieldError("/amount", short.detail, short.code)]
        raise short from exc
    except BalanceTooLarge as exc:
        raise InvalidRequest(str(exc), pointer="/amount") from exc
    return CreditBalance(
        tenant_id=tenant_id,
        balance=account.balance,
        reserved=account.reserved,
        available=account.available,
    )


@router.get("/prices", name="admin_list_prices")
async def list_prices(accounting: AccountingDep) -> PriceTable:
    return PriceTable(data=await accounting.prices.table())


@router.put("/prices", name="admin_set_price")
async def set_price(body: PriceOverride, accounting: AccountingDep) -> PriceTable:
    """Override one (operation, provider) price; every process uses it at once. An unknown
    operation, provider or unit, or a bad rate, is refused (422) and nothing is stored."""
    prices = accounting.prices
    operation, rule = prices.check(body.operation, body.provider, body.rule())
    await prices.override(operation, body.provider, rule)
    return PriceTable(data=await prices.table())


@router.get("/reconcile", name="admin_reconcile")
async def reconcile_spend(
    accounting: AccountingDep,
    since: Annotated[
        datetime, Query(description="Start of the window (RFC 3339): jobs finished from then.")
    ],
    until: Annotated[
        datetime | None, Query(description="End of the window; now if absent.")
    ] = None,
) -> Reconciliation:
    """Per provider: tasks submitted, upstream spend and tenant charges of the jobs finished in
    the window, and every job whose upstream was paid while its tenant was charged nothing,
    with the reason. A time without an offset is read as UTC."""
    since, until = as_utc(since), as_utc(until) if until is not None else None
    if until is not None and until < since:
        raise InvalidRequest("until is before since", pointer="/until")
    return await reconcile(accounting.spend_log, since, until, list(accounting.prices.providers))


@router.get("/providers", name="admin_list_providers")
async def list_providers(accounting: AccountingDep, catalog: CatalogDep) -> AdminProviderList:
    """Every provider with its circuit state and its upstream account's balance."""
    infos = await catalog.provider_list()
    adapters = accounting.prices.providers
    balances = await asyncio.gather(
        *(adapters[info.name].balance() for info in infos), return_exceptions=True
    )
    states = []
    for info, balance in zip(infos, balances, strict=True):
        state = ProviderState(**info.model_dump())
        if isinstance(balance, UpstreamError):
            state.balance_error = balance.detail
        elif isinstance(balance, BaseException):
            raise balance
        elif balance is not None:
            state.balance = UpstreamBalance(amount=balance.amount, unit=balance.unit)
        states.append(state)
    return AdminProviderList(data=states)


@router.get("/upstreams/{provider}", name="admin_get_upstream")
async def get_upstream(
    provider: str,
    accounting: AccountingDep,
    recent: Annotated[int, Query(ge=1, le=100, description="Newest upstream jobs to list.")] = 20,
) -> UpstreamView:
    """The provider's own account: balance, the models it offers with their prices, and its
    newest jobs (PixelAPI's ``/v1/models`` and ``/v1/account/usage``), where it lists them."""
    adapter = accounting.prices.providers.get(provider)
    if adapter is None:
        raise NotFound("provider", provider)
    view = UpstreamView(provider=provider)
    try:
        balance = await adapter.balance()
        if balance is not None:
            view.balance = UpstreamBalance(amount=balance.amount, unit=balance.unit)
        account = await adapter.account(recent)
    except UpstreamError as exc:
        view.error = exc.detail
        return view
    if account is not None:
        view.models = [UpstreamModelInfo(**vars(model)) for model in account.models]
        view.recent_jobs = [UpstreamJobInfo(**vars(job)) for job in account.recent_jobs]
    return view
