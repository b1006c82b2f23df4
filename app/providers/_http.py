"""What every adapter does with HTTP the same way: transport failures, bodies that do not parse,
error bodies, ``Retry-After``, and downloading a result file.

Adapters keep only what is their provider's own (the shape of its error envelope, its mapping
table); everything here is shared so that no adapter keeps a copy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from app.domain.errors import ProviderUnavailable, UpstreamTimeout
from app.domain.media_types import media_type
from app.providers.base import OutputFile

ERROR_TEXT_CHARS = 300
"""How much of an error body that is not JSON is kept as the failure's message."""
DATE_THRESHOLD_S = 1_000_000_000
"""A reset header above this is a Unix time; below, seconds to wait."""


@contextmanager
def upstream_errors(provider: str) -> Iterator[None]:
    """Turn httpx transport errors into ``UpstreamTimeout`` / ``ProviderUnavailable``.

    A timeout is never confused with a refusal: the first may still have done the work
    upstream, the second certainly did not. Where the request went out whole and no answer
    came back (a read timeout, a connection cut while the answer was awaited) the error says
    so (``unanswered``): a submission may have been accepted, and billed.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        sent = isinstance(exc, httpx.ReadTimeout)
        raise UpstreamTimeout(f"{provider} did not answer in time", unanswered=sent) from exc
    except httpx.TransportError as exc:
        sent = isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError)
        raise ProviderUnavailable(
            f"{provider} could not be reached ({type(exc).__name__})", unanswered=sent
        ) from exc
    except ValueError as exc:  # JSON or base64 that does not parse
        raise ProviderUnavailable(f"{provider} answered with an unreadable body") from exc


def unreadable(provider: str, what: str) -> ProviderUnavailable:
    """An answer the adapter cannot read: the service failing, not the request."""
    return ProviderUnavailable(f"{provider} answered with an unreadable body ({what})")


def json_body(provider: str, response: httpx.Response) -> Any:
    """The parsed JSON of an answer; raises :func:`unreadable` when it is not JSON."""
    try:
        return response.json()
    except ValueError as exc:
        raise unreadable(provider, "not JSON") from exc


def json_object(provider: str, response: httpx.Response) -> dict[str, Any]:
    """The parsed JSON object of an answer; raises :func:`unreadable` otherwise."""
    body = json_body(provider, response)
    if not isinstance(body, dict):
        raise unreadable(provider, "not a JSON object")
    return body


@dataclass(frozen=True)
class ErrorBody:
    """A refused request's body, read once: its JSON (``None`` when it is not JSON) and a text
    to show when the provider's envelope names no message."""

    json: Any
    text: str


def error_body(response: httpx.Response) -> ErrorBody:
    """Read an error answer's body without ever failing on it."""
    try:
        return ErrorBody(response.json(), response.reason_phrase or f"HTTP {response.status_code}")
    except ValueError:
        text = response.text.strip()[:ERROR_TEXT_CHARS]
        return ErrorBody(None, text or response.reason_phrase or f"HTTP {response.status_code}")


def retry_after(
    headers: httpx.Headers | Mapping[str, str],
    *,
    reset_header: str | None = None,
    now: float | None = None,
) -> float | None:
    """Seconds to wait before asking again: ``Retry-After`` (delta-seconds or an HTTP date,
    RFC 9110 §10.2.3), else ``reset_header`` where the provider sends one (a Unix time, or
    seconds to wait when it is too small to be a time). ``None`` when neither is readable."""
    moment = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - moment)
            except (TypeError, ValueError):
                pass
    if reset_header is None:
        return None
    try:
        reset = float(headers.get(reset_header) or "")
    except ValueError:
        return None
    return max(0.0, reset - moment if reset > DATE_THRESHOLD_S else reset)


def result_url(provider: str, value: object, what: str) -> str:
    """An absolute http(s) URL from an answer, or :func:`unreadable`."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise unreadable(provider, f"{what} without a result URL")
    return value


async def download(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    *,
    kind: str,
    timeout_s: float,
    hinted: object = None,
    headers: Mapping[str, str] | None = None,
    attempts: int = 1,
    pause_s: float = 1.0,
) -> OutputFile:
    """Fetch a result file the upstream stored, typed by its declared media type when that fits
    ``kind`` (else by ``hinted``, else sniffed from the bytes).

    Anything but a non-empty 200 is the service failing (``ProviderUnavailable``). With
    ``attempts`` > 1 a 404 is asked again after ``pause_s`` (the upload may lag the answer).
    """
    with upstream_errors(provider):
        for attempt in range(1, attempts + 1):
            response = await client.get(
                url, headers=dict(headers or {}), timeout=timeout_s, follow_redirects=True
            )
            if response.status_code != 404 or attempt == attempts:
                break
            await asyncio.sleep(pause_s)
    if response.status_code != 200 or not response.content:
        raise ProviderUnavailable(
            f"{provider} result download answered HTTP {response.status_code}"
        )
    declared = response.headers.get("content-type", "")
    found = media_type(response.content, kind, declared, hinted)
    if found is None:
        raise unreadable(provider, f"result is {declared or 'untyped'}, not {kind}")
    return OutputFile(response.content, found)
