"""PixelAPI's account listings: ``GET /v1/models`` and ``GET /v1/account/usage?limit=``.

The document describes both in words and a table, not a body: models "returns all available
models and operations with their pricing and capabilities" (its table: model / operation,
endpoint, credits, speed); usage "returns your recent job history with operations, models,
status, and output URLs", ``limit`` 20 in its example. Each is read as a list, or an object
holding the list under a name (``models``/``data``; ``usage``/``jobs``/``data``), and each entry
by the fields the document's words name; an entry without an id is skipped, a field of another
type is left unset. The sandbox emulator answers the same shapes.
"""

from __future__ import annotations

from typing import Any

from app.providers.base import UpstreamJob, UpstreamModel
from app.providers.pixelapi_errors import unreadable

USAGE_LIMIT_MAX = 100
"""The emulator's reading of ``limit``: 1–100 (the document gives 20 as an example)."""


def _entries(body: dict[str, Any] | list[Any], *names: str) -> list[dict[str, Any]]:
    entries: object = body
    if isinstance(body, dict):
        entries = next((body[name] for name in names if name in body), None)
    if not isinstance(entries, list):
        raise unreadable(f"no list under {' or '.join(names)}")
    return [entry for entry in entries if isinstance(entry, dict)]


def _text(entry: dict[str, Any], *names: str) -> str | None:
    value = next((entry[name] for name in names if entry.get(name) is not None), None)
    return value if isinstance(value, str) and value else None


def _number(entry: dict[str, Any], name: str) -> float | None:
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def read_models(body: dict[str, Any] | list[Any]) -> list[UpstreamModel]:
    """``GET /v1/models``: each model or operation with its endpoint and credits."""
    models = []
    for entry in _entries(body, "models", "data"):
        model_id = _text(entry, "id", "model", "name")
        if model_id is None:
            continue
        models.append(UpstreamModel(model_id, _text(entry, "endpoint"), _number(entry, "credits")))
    return models


def read_usage(body: dict[str, Any] | list[Any]) -> list[UpstreamJob]:
    """``GET /v1/account/usage``: the account's newest jobs, newest first as listed."""
    jobs = []
    for entry in _entries(body, "usage", "jobs", "data"):
        job_id = _text(entry, "generation_id", "id", "job_id")
        if job_id is None:
            continue
        jobs.append(
            UpstreamJob(
                id=job_id,
                status=_text(entry, "status"),
                operation=_text(entry, "operation"),
                model=_text(entry, "model"),
                credits=_number(entry, "credits_used"),
                created_at=_text(entry, "created_at"),
                output_url=_text(entry, "output_url"),
            )
        )
    return jobs
