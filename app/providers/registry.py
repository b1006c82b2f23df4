"""Which adapters exist, built once per process from settings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import httpx

from app.config import ProviderSettings, Settings
from app.jobs.operations import Operation
from app.providers.base import Adapter, AdapterConfig, Binding
from app.providers.imagepig import ImagePigAdapter
from app.providers.pixelapi import PixelApiAdapter
from app.sandbox import credentials as sandbox_credentials

ADAPTERS: dict[str, type[Adapter]] = {
    ImagePigAdapter.name: ImagePigAdapter,
    PixelApiAdapter.name: PixelApiAdapter,
}

_SANDBOX_KEYS = {
    ImagePigAdapter.name: sandbox_credentials.IMAGEPIG_API_KEY,
    PixelApiAdapter.name: sandbox_credentials.PIXELAPI_API_KEY,
}


def _secret(value: object) -> str | None:
    get = getattr(value, "get_secret_value", None)
    return get() if get else None


def adapter_config(name: str, provider: ProviderSettings, settings: Settings) -> AdapterConfig:
    if settings.sandbox:
        return AdapterConfig(
            base_url=f"{settings.sandbox_base_url}/_sandbox/{name}",
            api_key=_SANDBOX_KEYS.get(name),
            timeout_s=provider.timeout_s,
            poll_interval_s=provider.poll_interval_s,
        )
    assert provider.base_url is not None
    return AdapterConfig(
        base_url=provider.base_url,
        api_key=_secret(provider.api_key),
        client_id=_secret(provider.client_id),
        client_secret=_secret(provider.client_secret),
        timeout_s=provider.timeout_s,
        poll_interval_s=provider.poll_interval_s,
    )


class ProviderRegistry(Mapping[str, Adapter]):
    """The configured adapters by name, and which of them serve an operation."""

    def __init__(self, adapters: Mapping[str, Adapter], routing: Mapping[str, list[str]]) -> None:
        self._adapters = dict(adapters)
        self._routing = routing

    @classmethod
    def from_settings(cls, settings: Settings, client: httpx.AsyncClient) -> ProviderRegistry:
        adapters = {
            name: adapter_cls(
                client, adapter_config(name, settings.providers.named(name), settings)
            )
            for name, adapter_cls in ADAPTERS.items()
        }
        return cls(adapters, settings.routing)

    def __getitem__(self, name: str) -> Adapter:
        return self._adapters[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._adapters)

    def __len__(self) -> int:
        return len(self._adapters)

    def bindings(self, operation: Operation) -> dict[str, Binding]:
        """Providers able to run ``operation``, in the configured preference order."""
        capable = {
            name: adapter.bindings[operation]
            for name, adapter in self._adapters.items()
            if operation in adapter.bindings
        }
        order = [n for n in self._routing.get(operation.value, []) if n in capable]
        order += sorted(n for n in capable if n not in order)
        return {name: capable[name] for name in order}
