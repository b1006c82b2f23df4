"""How the emulators reach URLs their callers give them: input media and callbacks.

An emulator in the sandbox fetches what a client names, as the real providers do, so it gets
the gateway's SSRF guard (``app.safe_urls``): public addresses only, checked again on the
address dialled, no redirects. The hosts of :class:`SandboxAccess` ``allowed`` (the gateway's
own public URL, whose signed file URLs the emulators download) pass although not public.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from app.safe_urls import UrlPolicy, guarded_client

if TYPE_CHECKING:
    from app.config import Settings


@dataclass(frozen=True)
class SandboxAccess:
    """Who may steer the sandbox, and where its emulators may fetch from."""

    admin_token: str | None = None
    """Bearer token of the controls (``/_sandbox/faults``, ``/_sandbox/stats``); None: off."""
    allowed: tuple[str, ...] = ()
    """Hosts, ``host:port`` pairs or CIDR networks reachable although not public: the
    gateway's own host and port, and ``MEDIAGATE_URL_ALLOWLIST``."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxAccess:
        from app.config import admin_token

        own = urlsplit(settings.public_base_url)
        port = own.port or (443 if own.scheme == "https" else 80)
        host = f"[{own.hostname}]" if own.hostname and ":" in own.hostname else own.hostname
        gateway = (f"{host}:{port}",) if host else ()
        return cls(admin_token(settings), (*gateway, *settings.url_allowlist))


class _Fetcher:
    def __init__(self) -> None:
        self.policy = UrlPolicy()

    def allow(self, allowed: Iterable[str]) -> None:
        self.policy = UrlPolicy(allowed)


_fetcher = _Fetcher()


def allow(allowed: Iterable[str]) -> None:
    """The hosts and networks the emulators of this process may reach beside public ones."""
    _fetcher.allow(allowed)


def client(timeout_s: float) -> httpx.AsyncClient:
    """A client for one caller-given URL: guarded, no redirects, no proxies."""
    return guarded_client(_fetcher.policy, timeout_s)
