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

import logging
import time
from typing import Any, Final, Literal

import httpx

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.providers import _http
from app.providers._citations import HTTP_404, document
from app.providers._meaning import Meaning, unlisted
from app.providers.base import Failed

PROVIDER = "pixelapi"
doc = document(PROVIDER)
log = logging.getLogger(__name__)

Running = Literal["running"]
Completed = Literal["completed"]
Where = Literal["status", "http", "error"]

TABLE: Final[dict[tuple[Where, int | str], Running | Completed | Meaning]] = {
    # job statuses ("Status Values")
    ("status", "queued"): "running",
    ("status", "pending"): "running",  # what PixelAPI's own client library reports
    ("status", "processing"): "running",
    ("status", "completed"): "completed",
    ("status", "failed"): Meaning(
        ErrorCode.upstream_failed, True, doc(394, "failedProcessing failed")
    ),
    ("status", "blocked"): Meaning(
        ErrorCode.content_blocked, False, doc(395, "blockedContent policy violation")
    ),
    # HTTP answers ("Error Handling")
    ("http", 400): Meaning(ErrorCode.invalid_parameter, False, doc(842, "400Bad request")),
    ("http", 401): Meaning(ErrorCode.provider_auth_failed, True, doc(843, "401Invalid API key")),
    ("http", 402): Meaning(
        ErrorCode.provider_unavailable, True, doc(844, "402Insufficient credits")
    ),
    ("http", 403): Meaning(ErrorCode.provider_auth_failed, True, doc(845, "403Blocked by CDN")),
    ("http", 404): Meaning(ErrorCode.upstream_failed, True, HTTP_404),
    ("http", 413): Meaning(ErrorCode.media_too_large, False, doc(846, "413File too large")),
    ("http", 422): Meaning(ErrorCode.invalid_parameter, False, doc(847, "422Invalid parameters")),
    ("http", 429): Meaning(ErrorCode.provider_rate_limited, True, doc(848, "429Rate limited")),
    ("http", 500): Meaning(
        ErrorCode.provider_unavailable, True, doc(849, "500Server error"), raised=True
    ),
    # virtual try-on's detail.error codes ("Error Responses")
    ("error", "image_too_small"): Meaning(
        ErrorCode.invalid_media, False, doc(1045, "422image_too_small")
    ),
    ("error", "wrong_aspect_ratio"): Meaning(
        ErrorCode.invalid_media, False, doc(1046, "422wrong_aspect_ratio")
    ),
    ("error", "body_segmentation_failed"): Meaning(
        ErrorCode.invalid_media, False, doc(1047, "422body_segmentation_failed")
    ),
    ("error", "invalid_category"): Meaning(
        ErrorCode.invalid_parameter, False, doc(1048, "422invalid_category")
    ),
    ("error", "invalid_image"): Meaning(
        ErrorCode.invalid_media, False, doc(1049, "400invalid_image")
    ),
    ("error", "gpu_out_of_memory"): Meaning(
        ErrorCode.provider_unavailable, True, doc(1050, "503gpu_out_of_memory")
    ),
}
"""Every status, HTTP error and error code of the document → progress, success or meaning."""
UNLISTED: Final = unlisted()
"""A 4xx the document does not list: ``upstream_failed``, its code kept."""
WAIT_HEADERS_ON: Final = frozenset({429, 503})
"""Answers whose ``Retry-After`` / ``X-RateLimit-Reset`` (line 59) become ``retry_after_s``."""
RESET_HEADER = "x-ratelimit-reset"


def unreadable(what: str) -> ProviderUnavailable:
    return _http.unreadable(PROVIDER, what)


def json_object(response: httpx.Response) -> dict[str, Any]:
    return _http.json_object(PROVIDER, response)


def job_stage(status: object) -> Running | Completed | Meaning:
    """Where a job is, from its ``status``. A status not in the table is logged with its raw
    value and read as running (the job is polled on until its deadline); a body without a
    status is unreadable."""
    if not isinstance(status, str) or not status:
        raise unreadable(f"no status ({status!r})")
    stage = TABLE.get(("status", status))
    if stage is None:
        log.warning("%s: unknown job status %r; read as running", PROVIDER, status)
        return "running"
    return stage


def job_failure(status: str, meaning: Meaning, body: dict[str, Any]) -> Failed:
    """A ``failed`` / ``blocked`` job (its ``error``, or video and try-on's ``error_message``)."""
    error = body.get("error") or body.get("error_message") or f"job {status}"
    message = f"{PROVIDER} job {status}: {error}"
    return Failed(meaning.code, message, provider_code=status, retryable=meaning.retryable)


def _detail(response: httpx.Response) -> tuple[str, str | None]:
    """The error's text and, when the body names one, the upstream's own error code."""
    body = _http.error_body(response)
    detail = body.json.get("detail") if isinstance(body.json, dict) else None
    if isinstance(detail, dict):
        code = detail.get("error")
        text = str(detail.get("message") or code or detail)
        if detail.get("received_size"):
            text = f"{text} (received {detail['received_size']})"
        return text, code if isinstance(code, str) else None
    if isinstance(detail, list):
        messages = [str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in detail]
        return "; ".join(messages) or body.text, None
    return str(detail) if detail else body.text, None


def retry_after(headers: httpx.Headers, now: float) -> float | None:
    """Seconds to wait: ``Retry-After``, else ``X-RateLimit-Reset``."""
    return _http.retry_after(headers, reset_header=RESET_HEADER, now=now)


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
    wait = retry_after(response.headers, time.time()) if status in WAIT_HEADERS_ON else None
    return row.failed(f"{PROVIDER} HTTP {status}: {message}", code or f"http_{status}", wait)
