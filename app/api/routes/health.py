"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from redis.exceptions import RedisError

from app.api.deps import CatalogDep, JobsDep, MetricsDep, WorkersDep
from app.api.operation_ids import operation_id
from app.health import observe_store
from app.metrics import exposition

router = APIRouter(generate_unique_id_function=operation_id, tags=["health"])

WORKER_STALE_MS = 30_000


class Health(BaseModel):
    status: str
    redis: bool | None = None
    workers: int | None = None
    providers_not_ready: dict[str, str] | None = None
    """Providers routing skips, and why (the gateway stays ready: others serve)."""


@router.get("/healthz", name="healthz")
async def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", name="readyz", responses={503: {"model": Health}})
async def readyz(presence: WorkersDep, catalog: CatalogDep, response: Response) -> Health:
    """Redis answers and at least one worker sent a heartbeat recently; providers that cannot
    serve from this gateway are named (``providers_not_ready``)."""
    try:
        workers = await presence.alive(WORKER_STALE_MS)
    except (RedisError, OSError):
        response.status_code = 503
        return Health(status="unavailable", redis=False)
    ready = workers > 0
    response.status_code = 200 if ready else 503
    return Health(
        status="ok" if ready else "no_workers",
        redis=True,
        workers=workers,
        providers_not_ready=catalog.not_ready() or None,
    )


@router.get("/metrics", name="metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep, jobs: JobsDep) -> Response:
    """Prometheus text; with ``serve --processes N``, the values of all N processes merged."""
    await observe_store(metrics, jobs)
    return Response(exposition(metrics), media_type=CONTENT_TYPE_LATEST)
