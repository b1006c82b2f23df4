"""Translating transport failures into the gateway's own errors, at the adapter boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from app.domain.errors import ProviderUnavailable, UpstreamTimeout


@contextmanager
def upstream_errors(provider: str) -> Iterator[None]:
    """Turn httpx transport errors into ``UpstreamTimeout`` / ``ProviderUnavailable``.

    A timeout is never confused with a refusal: the first may still have done the work
    upstream, the second certainly did not.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{provider} did not answer in time") from exc
    except httpx.TransportError as exc:
        raise ProviderUnavailable(
            f"{provider} could not be reached ({type(exc).__name__})"
        ) from exc
    except ValueError as exc:  # JSON or base64 that does not parse
        raise ProviderUnavailable(f"{provider} answered with an unreadable body") from exc
