"""PixelAPI's one mapping table, and how its answers are read into it.

Every word PixelAPI uses to say how work went is a row of :data:`TABLE`, keyed by where the
word appears and the word itself:

- ``("status", …)``: a job's ``status`` (``GET /v1/image/{id}``, ``/v1/video/{id}``,
  ``/v1/virtual-tryon/jobs/{id}``), running, completed, or a failure's meaning;
- ``("http", …)``: the HTTP status of a refused request (the document's code table);
- ``("error", …)``: the try-on endpoints' structured ``detail.error`` codes, which say more
  than the HTTP status they come with, so they win over it.

A 5xx without a documented code is the ``("http", 500)`` row: it is *raised* as
:class:`~app.domain.errors.ProviderUnavailable` (transport trouble, retried and fallen back
from), as
every adapter treats an upstream's server errors. Any other 4xx is :data:`UNLISTED`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal

import httpx

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.providers.base import Failed

PROVIDER = "pixelapi"


@dataclass(frozen=True)
class Meaning:
    """What an upstream status, HTTP error or error code means in the gateway's terms."""

    code: ErrorCode
    retryable: bool
    raised: bool = False
    """Raised as ``ProviderUnavailable`` (a server error) rather than returned as ``Failed``."""


Running = Literal["running"]
Completed = Literal["completed"]
Where = Literal["status", "http", "error"]

TABLE: Final[dict[tuple[Where, int | str], Running | Completed | Meaning]] = {
    # job statuses
    ("status", "queued"): "running",
    ("status", "processing"): "running",
    ("status", "completed"): "completed",
    ("status", "failed"): Meaning(ErrorCode.upstream_failed, retryable=True),
    ("status", "blocked"): Meaning(ErrorCode.content_blocked, retryable=False),
    # HTTP answers ("Error Handling")
    ("http", 400): Meaning(ErrorCode.invalid_parameter, retryable=False),
    ("http", 401): Meaning(ErrorCode.provider_auth_failed, retryable=True),
    ("http", 402): Meaning(ErrorCode.provider_unavailable, retryable=True),
    ("http", 403): Meaning(ErrorCode.provider_auth_failed, retryable=True),
    ("http", 404): Meaning(ErrorCode.upstream_failed, retryable=True),
    ("http", 413): Meaning(ErrorCode.media_too_large, retryable=False),
    ("http", 422): Meaning(ErrorCode.invalid_parameter, retryable=False),
    ("http", 429): Meaning(ErrorCode.provider_rate_limited, retryable=True),
    ("http", 500): Meaning(ErrorCode.provider_unavailable, retryable=True, raised=True),
    # virtual try-on's detail.error codes
    ("error", "image_too_small"): Meaning(ErrorCode.invalid_media, retryable=False),
    ("error", "wrong_aspect_ratio"): Meaning(ErrorCode.invalid_media, retryable=False),
    ("error", "body_segmentation_failed"): Meaning(ErrorCode.invalid_media, retryable=False),
    ("error", "invalid_category"): Meaning(ErrorCode.invalid_parameter, retryable=False),
    ("error", "invalid_image"): Meaning(ErrorCode.invalid_media, retryable=False),
    ("error", "gpu_out_of_memory"): Meaning(ErrorCode.provider_unavailable, retryable=True),
}
"""Every status, HTTP error and error code of the document → progress, success or meaning."""
UNLISTED: Final = Meaning(ErrorCode.upstream_failed, retryable=False)
"""A 4xx the document does not list."""
WAIT_HEADERS_ON: Final = frozenset({429, 503})
"""Answers whose ``Retry-After`` / ``X-RateLimit-Reset`` become ``retry_after_s``."""


def unreadable(what: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"{PROVIDER} answered with an unreadable body ({what})")


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise unreadable("not JSON") from exc
    if not isinstance(body, dict):
        raise unreadable("not a JSON object")
    return body


def job_stage(status: object) -> Running | Completed | Meaning:
    """Where a job is, from its ``status``; a status not in the table is unreadable."""
    stage = TABLE.get(("status", status)) if isinstance(status, str) else None
    if stage is None:
        raise unreadable(f"unknown status {status!r}")
    return stage


def job_failure(status: str, meaning: Meaning, body: dict[str, Any]) -> Failed:
    """A ``failed`` / ``blocked`` job (its ``error``, or video and try-on's ``error_message``)."""
    error = body.get("error") or body.get("error_message") or f"job {status}"
    message = f"{PROVIDER} job {status}: {error}"
    return Failed(meaning.code, message, provider_code=status, retryable=meaning.retryable)


def _detail(response: httpx.Response) -> tuple[str, str | None]:
    """The error's text and, when the body names one, the upstream's own error code."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text.strip()[:300] or response.reason_phrase, None
    if isinstance(detail, dict):
        code = detail.get("error")
        text = str(detail.get("message") or code or detail)
        if detail.get("received_size"):
            text = f"{text} (received {detail['received_size']})"
        return text, code if isinstance(code, str) else None
    if isinstance(detail, list):
        messages = [str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in detail]
        return "; ".join(messages) or response.reason_phrase, None
    return str(detail) if detail else response.reason_phrase, None


def retry_after(headers: httpx.Headers, now: float) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds or a date), else ``X-RateLimit-Reset``
    (Unix seconds, or seconds to wait when it is too small to be a time)."""
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    try:
        reset = float(headers.get("x-ratelimit-reset", ""))
    except ValueError:
        return None
    return max(0.0, reset - now if reset > 1_000_000_000 else reset)


def failure(response: httpx.Response) -> Failed | None:
    """``None`` for a 2xx; else the table's meaning as ``Failed``, or raised for a server error."""
    status = response.status_code
    if status < 300:
        return None
    message, code = _detail(response)
    row = TABLE.get(("error", code)) if code else None
    if row is None:
        row = TABLE.get(("http", 500 if status >= 500 else status), UNLISTED)
    assert isinstance(row, Meaning)
    text = f"{PROVIDER} HTTP {status}: {message}"
    if row.raised:
        raise ProviderUnavailable(text)
    wait = retry_after(response.headers, time.time()) if status in WAIT_HEADERS_ON else None
    return Failed(
        code=row.code,
        message=text,
        provider_code=code or f"http_{status}",
        retryable=row.retryable,
        retry_after_s=wait,
    )
