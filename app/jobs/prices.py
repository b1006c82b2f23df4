"""What each (operation, provider) costs in gateway credits.

Defaults come from the adapters' bindings (derived from the providers' documents), then the
``prices`` setting, then overrides an admin stored in Redis (``PUT /admin/prices``). The
overrides are cached per process and dropped on ``keys.CACHE_INVALIDATIONS``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel
from redis.asyncio import Redis

from app.domain.operations import Operation
from app.providers.registry import ProviderRegistry
from app.store import keys


class Price(BaseModel):
    operation: Operation
    provider: str
    credits: int
    source: str
    """``default`` (from the provider's document), ``config`` or ``override``."""


class PriceBook:
    def __init__(
        self,
        redis: Redis,
        providers: ProviderRegistry,
        configured: Mapping[str, Mapping[str, int]],
    ) -> None:
        self.redis = redis
        self.providers = providers
        self.configured = configured
        self.cache_enabled = False
        self._overrides: dict[str, int] | None = None

    def forget_all(self) -> None:
        self._overrides = None

    async def _load_overrides(self) -> dict[str, int]:
        if self._overrides is not None and self.cache_enabled:
            return self._overrides
        raw = await self.redis.hgetall(keys.PRICES)
        overrides = {str(k): int(v) for k, v in raw.items()}
        if self.cache_enabled:
            self._overrides = overrides
        return overrides

    async def table(self) -> list[Price]:
        overrides = await self._load_overrides()
        prices = []
        for operation in Operation:
            for provider, binding in self.providers.bindings(operation).items():
                prices.append(self._price(operation, provider, binding.price, overrides))
        return prices

    async def price(self, operation: Operation, provider: str) -> int:
        binding = self.providers.bindings(operation)[provider]
        overrides = await self._load_overrides()
        return self._price(operation, provider, binding.price, overrides).credits

    def _price(
        self, operation: Operation, provider: str, default: int, overrides: Mapping[str, int]
    ) -> Price:
        field = _field(operation, provider)
        if field in overrides:
            return Price(
                operation=operation, provider=provider, credits=overrides[field], source="override"
            )
        configured = self.configured.get(operation.value, {}).get(provider)
        if configured is not None:
            return Price(
                operation=operation, provider=provider, credits=configured, source="config"
            )
        return Price(operation=operation, provider=provider, credits=default, source="default")

    async def override(self, operation: Operation, provider: str, credits: int) -> None:
        await self.redis.hset(keys.PRICES, _field(operation, provider), credits)
        self.forget_all()
        await self.redis.publish(keys.CACHE_INVALIDATIONS, "prices")


def _field(operation: Operation, provider: str) -> str:
    return f"{operation.value}|{provider}"
