"""The application: ``create_app(settings)`` and the lifespan that wires its parts.

One Redis client, one HTTP client, one adapter per provider and (unless disabled) one worker
per process, all created in the lifespan and kept on ``app.state.gateway``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from app import logs
from app.api import docs, playground, problems, routes
from app.api.body_limit import BodyLimit, body_rules
from app.api.deps import Services, refuse_unknown_key
from app.api.fast_routes import FastRoutes
from app.api.methods import HeadAsGet
from app.api.middleware import RequestMetrics
from app.api.operation_ids import operation_id
from app.config import Settings, get_settings
from app.gateway import build_gateway, freeze_heap, redis_url, seed
from app.jobs.media_rules import field_byte_limits
from app.metrics import Metrics
from app.providers.registry import ADAPTERS
from app.store.connection import connect
from app.upstream_http import upstream_client

log = logging.getLogger(__name__)

_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        redis = connect(redis_url(settings, stack, embed=True), timeout_s=settings.redis_timeout_s)
        stack.push_async_callback(redis.aclose)
        http = upstream_client()
        stack.push_async_callback(http.aclose)
        gateway = await build_gateway(settings, redis, http, app.state.metrics)
        services: Services = gateway  # what the routes see of it (type-checked here)
        app.state.gateway = services
        stack.push_async_callback(gateway.aclose)
        await seed(gateway)
        await gateway.jobs.events.start()
        stack.push_async_callback(gateway.jobs.events.stop)
        worker_task = None
        if settings.run_worker:
            worker_task = asyncio.create_task(gateway.worker.run(), name="worker")
        if getattr(app.state, "freeze_heap", False):
            freeze_heap()
        try:
            yield
        finally:
            # steps still running finish before the clients they use are closed
            if worker_task is not None:
                await asyncio.gather(gateway.worker.stop(), gateway.jobs.drain())
                with suppress(asyncio.CancelledError):
                    await worker_task
            else:
                await gateway.jobs.drain()


class Application(FastAPI):
    """FastAPI with ``HEAD`` answered on every ``GET`` route (``app.api.methods``): that
    layer goes outside all the others, the server-error layer included, where
    ``add_middleware`` cannot put it."""

    def build_middleware_stack(self) -> ASGIApp:
        return HeadAsGet(super().build_middleware_stack())


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> FastAPI:
    settings = settings or get_settings()
    if not logging.getLogger().handlers:  # a server process started by `serve --processes N`
        logs.configure(os.environ.get("MEDIAGATE_LOG_LEVEL", "info"))
    app = Application(
        title="mediagate",
        version="0.1.0",
        summary="One REST API in front of five AI media providers.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served by app.api.docs from local assets, not a CDN
        redoc_url=None,
        # FastAPI's own OpenTelemetry layer stays off: the gateway reports through its
        # Prometheus metrics and its log line per request (``app.api.middleware``), and the
        # layer asked the global providers whether it was on for every request, about 1 % of
        # a synchronous request's instructions.
        telemetry=_NO_TELEMETRY,
    )
    app.state.settings = settings
    metrics = Metrics(registry or CollectorRegistry())
    app.state.metrics = metrics
    problems.install(app)
    docs.install(app)
    playground.install(app, settings)
    # Innermost: the hot routes answered without FastAPI's routing and solver, inside the
    # body limit and the metrics like every route.
    app.add_middleware(FastRoutes)
    # Inside the metrics layer, so refused bodies are counted and logged like any answer.
    app.add_middleware(
        BodyLimit,
        rules=body_rules(
            settings.max_media_bytes,
            field_byte_limits(ADAPTERS.values(), settings.max_media_bytes),
        ),
        authenticate=refuse_unknown_key,
    )
    app.add_middleware(RequestMetrics, metrics=metrics)
    routes.install(app)
    if settings.sandbox and settings.sandbox_url is None:
        # imported here: a gateway that serves real providers never loads the emulators
        from app.sandbox.app import create_sandbox_router
        from app.sandbox.app import mount as mount_sandbox
        from app.sandbox.fetch import SandboxAccess
        from app.sandbox.timing import SandboxTiming

        sandbox = create_sandbox_router(
            SandboxTiming.from_settings(settings), access=SandboxAccess.from_settings(settings)
        )
        mount_sandbox(app, sandbox)
    return app


def create_served_app() -> FastAPI:
    """``create_app`` as ``mediagate serve``'s server processes build it: once started, each
    freezes its heap (``app.gateway.freeze_heap``)."""
    app = create_app()
    app.state.freeze_heap = True
    return app
