"""All HTTP routes of the gateway (providers are never named here)."""

from fastapi import APIRouter

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

router = APIRouter()
router.include_router(operations.router)
router.include_router(jobs.router)
router.include_router(batches.router)
router.include_router(files.router)
router.include_router(account.router)
router.include_router(catalog.router)
router.include_router(artifacts.router)
router.include_router(upstream_callbacks.router)
router.include_router(health.router)
router.include_router(admin.router)
