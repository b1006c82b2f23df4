"""What a process tells about the store and itself: the pre-scrape store check, and the
standalone worker's small HTTP server (its metrics, liveness and readiness)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.jobs.service import JobService
from app.metrics import Metrics

log = logging.getLogger(__name__)


STORE_CHECK_TIMEOUT_S = 3.0


async def observe_store(metrics: Metrics, jobs: JobService) -> bool:
    """Before a scrape: can the store be reached, and how long is the due-queue?"""
    metrics.prime(jobs.providers)
    try:
        depth = await asyncio.wait_for(jobs.store.queue_depth(), STORE_CHECK_TIMEOUT_S)
    except (RedisError, OSError, TimeoutError):
        metrics.redis_up.set(0)
        return False
    metrics.redis_up.set(1)
    metrics.queue_depth.set(depth)
    return True


def worker_app(metrics: Metrics, jobs: JobService) -> Starlette:
    """What a standalone worker answers: its metrics, liveness, readiness (the store answers)."""

    async def scrape(request: Request) -> Response:
        await observe_store(metrics, jobs)
        # The worker's own registry, always: it is one process, and a directory shared by
        # mistake with server processes must not make it report their values too.
        body = generate_latest(metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        if await observe_store(metrics, jobs):
            return JSONResponse({"status": "ok", "redis": True})
        return JSONResponse({"status": "unavailable", "redis": False}, status_code=503)

    return Starlette(
        routes=[
            Route("/metrics", scrape),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ]
    )


class _WorkerServer(uvicorn.Server):
    """Leaves SIGINT/SIGTERM to the worker, which stops this server on its way out."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serve_worker_http(
    metrics: Metrics, jobs: JobService, host: str, port: int
) -> AsyncIterator[None]:
    """Serve :func:`worker_app` on ``host:port`` while the block runs (``port`` 0: not at all).

    A port already taken is logged, not fatal: the worker's job is jobs.
    """
    if port == 0:
        yield
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        log.error(
            "worker: cannot serve /metrics on %s:%d (%s); running without it", host, port, exc
        )
        yield
        return
    config = uvicorn.Config(
        worker_app(metrics, jobs), log_config=None, access_log=False, lifespan="off"
    )
    server = _WorkerServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="worker-http")
    log.info("worker: /metrics, /healthz and /readyz on %s:%d", host, port)
    try:
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()
