"""All HTTP routes of the gateway (providers are never named here)."""

from fastapi import APIRouter, FastAPI

from app.api.routes import (
    account,
    admin,
    artifacts,
    batches,
    catalog,
    files,
    health,
    jobs,
    operations,
    upstream_callbacks,
)

routers: tuple[APIRouter, ...] = (
    operations.router,
    jobs.router,
    batches.router,
    files.router,
    account.router,
    catalog.router,
    artifacts.router,
    upstream_callbacks.router,
    health.router,
    admin.router,
)
"""In the order requests are matched: the hot routes (operations, jobs) first."""


def install(app: FastAPI) -> None:
    """Every router's routes added to the application itself, as they were built.

    ``app.include_router`` would keep each router as a branch that FastAPI matches (and
    matches again to dispatch) on every request, and would build every route a second time on
    the first request (each endpoint's parameters analysed anew). The routers carry what an
    include would add: their prefix, tags, responses and dependencies are in their routes
    already, and they name operations as the application does (``operation_id``); the
    application adds no prefix, dependency or overrides of its own.
    """
    for included in routers:
        app.router.routes.extend(included.routes)
