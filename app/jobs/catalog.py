"""What the gateway offers: operations with their providers, parameters and prices; styles
and voices from the upstreams that have them (cached in Redis, since they rarely change).

An upstream whose every request from the gateway's address counts against one limit over a
long window (Perfect's 100 requests per 5 minutes per IP) is listed only within what its jobs
leave of that window (``gate.HEADROOM_REQUESTS``, ``gate.HEADROOM_SHARE``), less one request
kept for a sign-in: a tenant paging through styles can never take the requests that keep
running tasks polled. Past that, an uncached listing answers 503 ``provider_rate_limited``
with a ``Retry-After``; cached pages are still served."""

from __future__ import annotations

import json
import math

from pydantic import BaseModel, TypeAdapter

from app.domain.errors import ErrorCode, GatewayError
from app.domain.media import MediaKind
from app.domain.operations import PARAMS, ROUTES, Operation
from app.jobs.gate import HEADROOM_REQUESTS, HEADROOM_SHARE, RATE_MARGIN
from app.jobs.prices import PriceBook, PriceRule
from app.jobs.prices.rules import DEFAULT_CAPS
from app.providers.base import Style, Voice
from app.providers.registry import ProviderRegistry
from app.store.catalog_cache import CatalogCache
from app.store.circuits import Circuits, CircuitState
from app.store.rate_limits import RateLimiter

SIGN_IN_REQUESTS = 1
"""Of the requests jobs leave unspent in an egress window, those kept for signing in."""


class ParameterInfo(BaseModel):
    name: str
    values: list[str | int | float | bool] | None = None
    """The values this provider accepts, when it accepts fewer than the operation allows."""
    required: bool = False
    """This provider needs the parameter though the operation does not (a request to it
    without one answers 422 ``missing_parameter``)."""


class ProviderBinding(BaseModel):
    name: str
    price: int
    """Credits for one job under a flat rule; under a rule by the unit, the most one job can
    cost (``rule.cap`` units)."""
    rule: PriceRule
    """How a job is priced: ``rate`` credits per ``unit``, rounded up to a whole credit once
    per job. Submission reserves the most the request can cost; the end charges what was done
    and refunds the rest."""
    parameters: list[ParameterInfo]
    required: list[str] = []
    """The parameters this provider requires beyond the operation's own (see ``parameters``)."""


class OperationInfo(BaseModel):
    name: Operation
    route: str
    inputs: dict[str, MediaKind]
    """Media fields and the kind of media each takes."""
    providers: list[ProviderBinding]


class ProviderInfo(BaseModel):
    name: str
    configured: bool
    """Credentials are set (or sandbox mode is on)."""
    operations: list[Operation]
    circuit: CircuitState
    """``open`` while the provider is failing: no new job is sent to it."""
    ready: bool = True
    """False when the provider cannot serve jobs from this gateway (routing skips it)."""
    not_ready_reason: str | None = None
    plans: list[str] | None = None
    """The plan each pool credential is taken to be on, where the provider sells several."""


class StyleInfo(BaseModel):
    id: str
    provider: str
    title: str | None = None
    group_id: str | None = None
    group_title: str | None = None
    thumbnail_url: str | None = None


class VoiceInfo(BaseModel):
    id: str
    provider: str
    language: str | None = None
    gender: str | None = None
    age: str | None = None


class StylePage(BaseModel):
    data: list[StyleInfo]
    next_cursor: str | None


_VOICES = TypeAdapter(list[VoiceInfo])


class Catalog:
    def __init__(
        self,
        cache: CatalogCache,
        providers: ProviderRegistry,
        prices: PriceBook,
        circuits: Circuits,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.cache = cache
        self.providers = providers
        self.prices = prices
        self.circuits = circuits
        self.limiter = limiter
        """Paces listings of upstreams with a long-window egress limit (none: unpaced)."""

    async def operations(self) -> list[OperationInfo]:
        table = {(p.operation, p.provider): p.rule for p in await self.prices.table()}
        out = []
        for operation, params in PARAMS.items():
            inputs = dict(params.media_fields)  # required, or `X | None` such as a mask
            bindings = [
                ProviderBinding(
                    name=provider,
                    price=table[(operation, provider)].quote(None).amount,
                    rule=_shown(table[(operation, provider)]),
                    parameters=[
                        ParameterInfo(
                            name=name,
                            values=sorted(binding.values[name], key=str)
                            if name in binding.values
                            else None,
                            required=name in binding.required,
                        )
                        for name in sorted(binding.parameters)
                    ],
                    required=sorted(binding.required),
                )
                for provider, binding in self.providers.bindings(operation).items()
            ]
            out.append(
                OperationInfo(
                    name=operation, route=ROUTES[operation], inputs=inputs, providers=bindings
                )
            )
        return out

    def not_ready(self) -> dict[str, str]:
        """Providers that cannot serve jobs from this gateway, and why."""
        return dict(self.providers.not_ready)

    async def provider_list(self) -> list[ProviderInfo]:
        return [
            ProviderInfo(
                name=name,
                configured=any(
                    c.api_key or c.client_id or c.client_secret for c in adapter.config.credentials
                ),
                operations=sorted(adapter.bindings),
                circuit=await self.circuits.state(name),
                ready=name not in self.providers.not_ready,
                not_ready_reason=self.providers.not_ready.get(name),
                plans=adapter.plans() or None,
            )
            for name, adapter in self.providers.items()
        ]

    async def styles(
        self,
        operation: Operation,
        variant: str | None,
        page_size: int,
        cursor: str | None,
    ) -> StylePage:
        """One page of the styles the operation's styled provider offers."""
        for name in self.providers.bindings(operation):
            query = f"{operation.value}|{variant}|{page_size}|{cursor}"
            cached = await self.cache.get("styles", name, query)
            if cached is not None:
                return StylePage.model_validate_json(cached)
            await self._within_egress(name)
            page = await self.providers[name].styles(operation, variant, page_size, cursor)
            if not page.styles and cursor is None:
                continue
            result = StylePage(
                data=[_style(name, s) for s in page.styles], next_cursor=page.next_token
            )
            await self.cache.put("styles", name, query, result.model_dump_json())
            return result
        return StylePage(data=[], next_cursor=None)

    async def _within_egress(self, name: str) -> None:
        """Take one of the listings the upstream's egress window leaves to spare, or refuse."""
        adapter = self.providers[name]
        if self.limiter is None or adapter.egress_limit is None:
            return
        limit = adapter.upstream_limit(adapter.egress_limit)
        if limit is None or limit.rate_per_s is None or limit.window_s <= 1.0:
            return
        used = limit.usable_rate(RATE_MARGIN, HEADROOM_REQUESTS, HEADROOM_SHARE) or 0.0
        spare = math.floor((limit.rate_per_s - used) * limit.window_s + 1e-9)
        listings = spare - SIGN_IN_REQUESTS
        if listings < 1:
            raise _listings_refused(name, limit.window_s)
        decision = await self.limiter.check(
            f"upstream-listings:{name}", listings * 60 / limit.window_s, listings
        )
        if not decision.allowed:
            raise _listings_refused(name, decision.retry_after_s)

    async def voices(self) -> list[VoiceInfo]:
        voices: list[VoiceInfo] = []
        for name in self.providers.bindings(Operation.audio_speech):
            cached = await self.cache.get("voices", name, "all")
            if cached is not None:
                voices += _VOICES.validate_json(cached)
                continue
            found = [_voice(name, v) for v in await self.providers[name].voices()]
            await self.cache.put(
                "voices", name, "all", json.dumps(_VOICES.dump_python(found, mode="json"))
            )
            voices += found
        return voices


def _listings_refused(provider: str, retry_after_s: float) -> GatewayError:
    return GatewayError(
        f"{provider}'s requests from this address are kept for running jobs; "
        "list its styles again later",
        ErrorCode.provider_rate_limited,
        503,
        headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
    )


def _shown(rule: PriceRule) -> PriceRule:
    """The rule with its cap spelled out (the unit's default when it sets none)."""
    if rule.cap is not None:
        return rule
    return rule.model_copy(update={"cap": DEFAULT_CAPS[rule.unit]})


def _style(provider: str, style: Style) -> StyleInfo:
    return StyleInfo(
        id=style.id,
        provider=provider,
        title=style.title,
        group_id=style.group_id,
        group_title=style.group_title,
        thumbnail_url=style.thumbnail_url,
    )


def _voice(provider: str, voice: Voice) -> VoiceInfo:
    return VoiceInfo(
        id=voice.id,
        provider=provider,
        language=voice.language,
        gender=voice.gender,
        age=voice.age,
    )
