"""Which adapters exist, built once per process from settings.

Sandbox mode points every adapter at the emulators with their test credentials; the
credentials are handed in by the composition (``app.gateway``), so adapters never import the
sandbox."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from urllib.parse import urlsplit

import httpx
from redis.asyncio import Redis

from app.config import CredentialSettings, ProviderSettings, Settings
from app.domain.operations import Operation
from app.providers.base import Adapter, AdapterConfig, Binding, Credential, UpstreamLimit
from app.providers.everypixel import EverypixelAdapter
from app.providers.imagepig import ImagePigAdapter
from app.providers.imagepipeline import ImagePipelineAdapter
from app.providers.perfectcorp import PerfectCorpAdapter
from app.providers.pixelapi import PixelApiAdapter
from app.store.adapter_state import RedisAdapterState

ADAPTERS: dict[str, type[Adapter]] = {
    adapter.name: adapter
    for adapter in (
        EverypixelAdapter,
        PixelApiAdapter,
        PerfectCorpAdapter,
        ImagePigAdapter,
        ImagePipelineAdapter,
    )
}


def _secret(value: object) -> str | None:
    get = getattr(value, "get_secret_value", None)
    return get() if get else None


def _credential(settings: CredentialSettings) -> Credential:
    return Credential(
        api_key=_secret(settings.api_key),
        client_id=_secret(settings.client_id),
        client_secret=_secret(settings.client_secret),
        plan=settings.plan,
    )


def _plan(name: str, provider: ProviderSettings) -> dict[str, UpstreamLimit]:
    """Configured limits, refused at start-up when they name a budget the adapter lacks."""
    known = ADAPTERS[name].limits
    unknown = sorted(set(provider.limits) - set(known))
    if unknown:
        raise ValueError(
            f"providers.{name}.limits: no limit named {', '.join(unknown)} "
            f"(the {name} adapter has: {', '.join(sorted(known)) or 'none'})"
        )
    return {
        limit: UpstreamLimit(
            rate_per_s=plan.requests_per_minute / 60 if plan.requests_per_minute else None,
            concurrent_jobs=plan.concurrent_jobs,
        )
        for limit, plan in provider.limits.items()
    }


SandboxCredentials = Callable[[str], Sequence[Credential]]
"""A provider's name → the credentials its emulator accepts (sandbox mode)."""


def adapter_config(
    name: str,
    provider: ProviderSettings,
    settings: Settings,
    sandbox_credentials: SandboxCredentials | None = None,
) -> AdapterConfig:
    if settings.sandbox:
        if sandbox_credentials is None:
            raise ValueError("sandbox mode needs the emulators' credentials")
        base_url = f"{settings.sandbox_base_url}/_sandbox/{name}"
        pool = tuple(sandbox_credentials(name))
    else:
        assert provider.base_url is not None
        base_url = provider.base_url
        pool = tuple(_credential(c) for c in [provider, *provider.pool])
    return AdapterConfig(
        base_url=base_url,
        credentials=pool,
        timeout_s=provider.timeout_s,
        poll_interval_s=provider.poll_interval_s,
        limits=_plan(name, provider),
    )


_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")


def unreachable_public_url(public_base_url: str) -> str | None:
    """Why the internet cannot reach ``public_base_url`` (a loopback, private or otherwise
    non-public address, or a local name), or None. Other names are taken at their word: they
    cannot be resolved here the way the provider will resolve them."""
    host = (urlsplit(public_base_url).hostname or "").lower().rstrip(".")
    if not host:
        return "has no host"
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES) or "." not in host and ":" not in host:
        return f"names a local host ({host})"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_loopback:
        return "is a loopback address"
    if ip.is_private or ip.is_link_local or not ip.is_global:
        return "is not a public address"
    return None


def readiness(adapter: Adapter, settings: Settings) -> str | None:
    """Why ``adapter`` cannot serve jobs from this gateway, or None when it can. A provider
    that fetches its inputs from the gateway's public URL cannot while that URL is loopback or
    private (the sandbox's emulators run beside the gateway, so there it can)."""
    if not adapter.fetches_inputs or settings.sandbox:
        return None
    why = unreachable_public_url(settings.public_base_url)
    if why is None:
        return None
    return (
        f"{adapter.name} fetches inputs from the gateway's public URL, which {why}: "
        "set MEDIAGATE_PUBLIC_BASE_URL to an address the internet reaches"
    )


class ProviderRegistry(Mapping[str, Adapter]):
    """The configured adapters by name, and which of them serve an operation. Adapters that
    are not ready (``not_ready``: provider → why) are kept for listing but never routed to."""

    def __init__(
        self,
        adapters: Mapping[str, Adapter],
        routing: Mapping[Operation, Sequence[str]],
        not_ready: Mapping[str, str] | None = None,
    ) -> None:
        self._adapters = dict(adapters)
        self._routing = routing
        self.not_ready: Mapping[str, str] = MappingProxyType(dict(not_ready or {}))
        self._bindings = {operation: self._serving(operation) for operation in Operation}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        client: httpx.AsyncClient,
        redis: Redis,
        *,
        sandbox_credentials: SandboxCredentials | None = None,
    ) -> ProviderRegistry:
        adapters = {
            name: adapter_cls(
                client,
                adapter_config(name, settings.providers.named(name), settings, sandbox_credentials),
                RedisAdapterState(redis, name),
            )
            for name, adapter_cls in ADAPTERS.items()
        }
        not_ready = {
            name: why
            for name, adapter in adapters.items()
            if (why := readiness(adapter, settings)) is not None
        }
        return cls(adapters, settings.routing, not_ready)

    def __getitem__(self, name: str) -> Adapter:
        return self._adapters[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._adapters)

    def __len__(self) -> int:
        return len(self._adapters)

    def bindings(self, operation: Operation) -> Mapping[str, Binding]:
        """Providers able to run ``operation``, in the configured preference order (found
        once: the adapters, the routing and which are ready are fixed at start-up)."""
        return self._bindings[operation]

    def _serving(self, operation: Operation) -> Mapping[str, Binding]:
        capable = {
            name: adapter.bindings[operation]
            for name, adapter in self._adapters.items()
            if operation in adapter.bindings and name not in self.not_ready
        }
        order = [n for n in self._routing.get(operation, []) if n in capable]
        order += sorted(n for n in capable if n not in order)
        return MappingProxyType({name: capable[name] for name in order})
