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
    """Every router included in the application itself, one level deep.

    FastAPI matches an included router as a branch (and matches it again to dispatch) on
    every request, at each level of nesting: one level instead of two halves that work.
    """
    for included in routers:
        app.include_router(included)
