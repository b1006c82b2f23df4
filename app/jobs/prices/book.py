"""The price book: each (operation, provider)'s rule, from defaults, config and overrides.

Defaults come from the providers' documents (:mod:`app.jobs.prices.defaults`), then the
``prices`` setting, then overrides an admin stored in Redis (``PUT /admin/prices``). The
overrides are cached per process and dropped on ``keys.CACHE_INVALIDATIONS``. Names are
checked wherever a rule comes in: an unknown operation, provider or unit is refused (the
setting at start-up, an override with a 422 naming the field), never accepted silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ValidationError, computed_field
from redis.asyncio import Redis

from app.domain.errors import FieldError, InvalidRequest
from app.domain.operations import Operation
from app.jobs.prices.defaults import default_rule
from app.jobs.prices.rules import PriceRule, PriceUnit
from app.providers.registry import ProviderRegistry
from app.store import keys

Source = Literal["default", "config", "override"]
ConfiguredPrice = int | Mapping[str, object]
"""A flat price in credits, or a rule ``{unit, rate, cap}``."""


class Price(BaseModel):
    operation: Operation
    provider: str
    rule: PriceRule
    source: Source
    """``default`` (from the provider's document), ``config`` or ``override``."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def credits(self) -> int:
        """The most one job can cost under this rule (its cap's worth; a flat price itself)."""
        return self.rule.quote(None).amount


class PriceBook:
    def __init__(
        self,
        redis: Redis,
        providers: ProviderRegistry,
        configured: Mapping[str, Mapping[str, ConfiguredPrice]],
    ) -> None:
        self.redis = redis
        self.providers = providers
        self.configured = self._check_configured(configured)
        self.cache_enabled = False
        self._overrides: dict[str, PriceRule] | None = None

    def _check_configured(
        self, configured: Mapping[str, Mapping[str, ConfiguredPrice]]
    ) -> dict[tuple[Operation, str], PriceRule]:
        rules: dict[tuple[Operation, str], PriceRule] = {}
        for op_name, by_provider in configured.items():
            for provider, value in by_provider.items():
                where = f"prices.{op_name}.{provider}"
                try:
                    operation, rule = self.check(op_name, provider, value)
                except InvalidRequest as exc:
                    raise ValueError(f"{where}: {exc.detail}") from exc
                rules[(operation, provider)] = rule
        return rules

    def check(self, operation: str, provider: str, value: object) -> tuple[Operation, PriceRule]:
        """A rule for a known (operation, provider), or an :class:`InvalidRequest` whose
        pointers name the unknown operation, provider, unit or bad rate."""
        try:
            op = Operation(operation)
        except ValueError:
            raise InvalidRequest(f"unknown operation {operation!r}", pointer="/operation") from None
        bindings = self.providers.bindings(op)
        if provider not in bindings:
            raise InvalidRequest(
                f"{provider!r} does not serve {op.value}; one of {', '.join(bindings)}",
                pointer="/provider",
            )
        return op, parse_rule(value)

    def forget_all(self) -> None:
        self._overrides = None

    async def _load_overrides(self) -> dict[str, PriceRule]:
        if self._overrides is not None and self.cache_enabled:
            return self._overrides
        raw = await self.redis.hgetall(keys.PRICES)
        overrides = {str(k): _stored_rule(str(v)) for k, v in raw.items()}
        if self.cache_enabled:
            self._overrides = overrides
        return overrides

    async def table(self) -> list[Price]:
        overrides = await self._load_overrides()
        prices = []
        for operation in Operation:
            for provider, binding in self.providers.bindings(operation).items():
                rule, source = self._in_force(operation, provider, binding.price, overrides)
                prices.append(
                    Price(operation=operation, provider=provider, rule=rule, source=source)
                )
        return prices

    async def rule(self, operation: Operation, provider: str) -> PriceRule:
        binding = self.providers.bindings(operation)[provider]
        overrides = await self._load_overrides()
        return self._in_force(operation, provider, binding.price, overrides)[0]

    def default(self, operation: Operation, provider: str) -> PriceRule:
        """The rule the provider's document gives (what its upstream task costs)."""
        return default_rule(operation, provider, self.providers[provider].bindings[operation].price)

    def _in_force(
        self, operation: Operation, provider: str, flat: int, overrides: Mapping[str, PriceRule]
    ) -> tuple[PriceRule, Source]:
        """The rule in force and where it comes from; a :class:`Price` only for the table,
        since jobs ask for the rule twice at each submission."""
        field = _field(operation, provider)
        if field in overrides:
            return overrides[field], "override"
        configured = self.configured.get((operation, provider))
        if configured is not None:
            return configured, "config"
        return default_rule(operation, provider, flat), "default"

    async def override(self, operation: Operation, provider: str, rule: PriceRule) -> None:
        await self.redis.hset(keys.PRICES, _field(operation, provider), rule.model_dump_json())
        self.forget_all()
        await self.redis.publish(keys.CACHE_INVALIDATIONS, "prices")


def parse_rule(value: object) -> PriceRule:
    """A rule from a flat credit count or ``{unit, rate, cap}``; :class:`InvalidRequest`
    with a pointer per bad field otherwise (an unknown unit among them)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InvalidRequest("a price cannot be negative", pointer="/credits")
        return PriceRule.flat(value)
    if not isinstance(value, Mapping):
        raise InvalidRequest("a price is a credit count or a rule {unit, rate, cap}", pointer="")
    unit = value.get("unit", PriceUnit.job.value)
    if unit not in {u.value for u in PriceUnit}:
        raise InvalidRequest(
            f"unknown unit {unit!r}; one of {', '.join(u.value for u in PriceUnit)}",
            pointer="/unit",
        )
    try:
        return PriceRule.model_validate(dict(value))
    except ValidationError as exc:
        errors = [
            FieldError("/" + "/".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()
        ]
        raise InvalidRequest(errors[0].detail, errors=errors) from exc


def _stored_rule(raw: str) -> PriceRule:
    """An override as stored: a rule's JSON, or a bare integer (a flat price)."""
    value = json.loads(raw)
    return PriceRule.flat(value) if isinstance(value, int) else PriceRule.model_validate(value)


def _field(operation: Operation, provider: str) -> str:
    return f"{operation.value}|{provider}"
