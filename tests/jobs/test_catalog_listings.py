"""Style listings of an upstream whose every request from the gateway's address counts against
one long-window limit (Perfect's 100 per 5 minutes per IP) take only what its jobs leave of
that window, less a sign-in: a tenant paging through styles never takes the requests that keep
running tasks polled. Real Redis; an adapter that counts its listings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

import httpx
import pytest
from redis.asyncio import Redis

from app.domain.errors import ErrorCode, GatewayError
from app.domain.operations import Operation
from app.jobs.catalog import Catalog
from app.jobs.prices import PriceBook
from app.providers.base import (
    Adapter,
    AdapterConfig,
    Binding,
    Call,
    PollResult,
    Style,
    StyleListing,
    SubmitResult,
    UpstreamLimit,
)
from app.providers.registry import ProviderRegistry
from app.store.catalog_cache import CatalogCache
from app.store.circuits import CircuitPolicy, Circuits
from app.store.rate_limits import RateLimiter
from app.store.scripts import Scripts

DOCUMENTED = UpstreamLimit(rate_per_s=100 / 300, window_s=300)
"""100 requests per 5 minutes from one address."""


class Lister(Adapter):
    name: ClassVar[str] = "lister"
    bindings: ClassVar[Mapping[Operation, Binding]] = {
        Operation.image_hairstyle: Binding(parameters=frozenset({"style_id"}))
    }
    limits: ClassVar[Mapping[str, UpstreamLimit]] = {"egress": DOCUMENTED}
    egress_limit: ClassVar[str | None] = "egress"

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(httpx.AsyncClient(), config)
        self.listed = 0

    async def styles(
        self, operation: Operation, variant: str | None, page_size: int, starting_token: str | None
    ) -> StyleListing:
        self.listed += 1
        return StyleListing(styles=[Style(id=f"s{self.listed}")], next_token="more")

    async def submit(self, call: Call) -> SubmitResult:
        raise NotImplementedError

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        raise NotImplementedError


class Unlimited(Lister):
    """Per-credential limits only: nothing from the address is shared with running tasks."""

    egress_limit: ClassVar[str | None] = None


def catalog_over(redis: Redis, lister: Lister) -> Catalog:
    scripts = Scripts.register(redis)
    providers = ProviderRegistry({lister.name: lister}, {})
    return Catalog(
        CatalogCache(redis),
        providers,
        PriceBook(redis, providers, {}),
        Circuits(redis, scripts, CircuitPolicy()),
        RateLimiter(redis, scripts),
    )


@pytest.fixture
async def adapters() -> AsyncIterator[list[Lister]]:
    made: list[Lister] = []
    yield made
    for adapter in made:
        await adapter.client.aclose()


def lister(adapters: list[Lister], kind: type[Lister] = Lister, **config: object) -> Lister:
    adapter = kind(AdapterConfig(base_url="http://upstream.invalid", **config))  # type: ignore[arg-type]
    adapters.append(adapter)
    return adapter


async def list_pages(catalog: Catalog, pages: int) -> None:
    for page in range(pages):
        await catalog.styles(Operation.image_hairstyle, None, 10, f"p{page}")


async def test_listings_take_what_jobs_leave_of_the_window_less_a_sign_in(
    redis_client: Redis, adapters: list[Lister]
) -> None:
    """Jobs spend 97 of each 100 (3 left, ``gate.HEADROOM_REQUESTS``): 2 listings, 1 sign-in."""
    upstream = lister(adapters)
    catalog = catalog_over(redis_client, upstream)
    await list_pages(catalog, 2)
    with pytest.raises(GatewayError) as refused:
        await catalog.styles(Operation.image_hairstyle, None, 10, "another")
    assert (refused.value.code, refused.value.status) == (ErrorCode.provider_rate_limited, 503)
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 150  # the next listing's turn
    assert upstream.listed == 2
    cached = await catalog.styles(Operation.image_hairstyle, None, 10, "p1")  # no request
    assert [s.id for s in cached.data] == ["s2"] and upstream.listed == 2


async def test_a_bigger_contract_leaves_more_listings(
    redis_client: Redis, adapters: list[Lister]
) -> None:
    """10,000 per 5 minutes: jobs leave 1 % (100), listings take 99 of them at most."""
    plan = UpstreamLimit(rate_per_s=10_000 / 300)
    upstream = lister(adapters, limits={"egress": plan})
    catalog = catalog_over(redis_client, upstream)
    await list_pages(catalog, 99)
    with pytest.raises(GatewayError):
        await catalog.styles(Operation.image_hairstyle, None, 10, "the 100th")
    assert upstream.listed == 99


async def test_an_upstream_without_an_egress_window_is_listed_freely(
    redis_client: Redis, adapters: list[Lister]
) -> None:
    upstream = lister(adapters, Unlimited)
    await list_pages(catalog_over(redis_client, upstream), 120)
    assert upstream.listed == 120
