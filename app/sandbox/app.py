"""The sandbox: every emulated provider under ``/_sandbox/``, plus fault control and counters.

``/_sandbox/{provider}/…`` serve each provider's own paths (checking that provider's own
credentials); ``POST /_sandbox/faults`` arms a fault, ``DELETE /_sandbox/faults`` clears them
(and the counters), ``GET /_sandbox/stats`` reports requests and submissions per provider.
The controls take the admin token (``Authorization: Bearer $MEDIAGATE_ADMIN_TOKEN``) and are
off without one; ``GET /_sandbox/healthz`` answers anyone. ``mediagate sandbox`` serves this
app alone; in sandbox mode the gateway mounts it on its own port.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, FastAPI, HTTPException, Request, params

from app.sandbox import everypixel, fetch, imagepig, imagepipeline, perfectcorp, pixelapi
from app.sandbox.control import FaultRequest, SandboxControl
from app.sandbox.fetch import SandboxAccess
from app.sandbox.timing import SandboxTiming


def _admin_only(access: SandboxAccess) -> params.Depends:
    async def check(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        token = access.admin_token
        if (
            token is None
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(given.strip().encode(), token.encode())
        ):
            raise HTTPException(
                401,
                "the sandbox controls need the admin token (MEDIAGATE_ADMIN_TOKEN)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return params.Depends(check)


def create_sandbox_router(
    timing: SandboxTiming,
    control: SandboxControl | None = None,
    access: SandboxAccess | None = None,
) -> APIRouter:
    control = control or SandboxControl()
    access = access or SandboxAccess()
    fetch.allow(access.allowed)
    router = APIRouter(prefix="/_sandbox", include_in_schema=False)
    admin = [_admin_only(access)]

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.post("/faults", status_code=204, dependencies=admin)
    async def arm_fault(request: FaultRequest) -> None:
        control.arm(request)

    @router.delete("/faults", status_code=204, dependencies=admin)
    async def clear_faults() -> None:
        control.clear()
        control.reset_stats()

    @router.get("/stats", dependencies=admin)
    async def stats() -> dict[str, dict[str, object]]:
        return control.snapshot()

    for name, emulator in (
        ("everypixel", everypixel),
        ("pixelapi", pixelapi),
        ("perfectcorp", perfectcorp),
        ("imagepig", imagepig),
        ("imagepipeline", imagepipeline),
    ):
        # built under their final paths and added as they are: ``include_router`` would build
        # every route again (FastAPI analyses each endpoint's parameters anew per copy)
        router.routes.extend(emulator.router(control, timing, prefix=f"/_sandbox/{name}").routes)
    return router


def mount(app: FastAPI, router: APIRouter) -> None:
    """Add the sandbox's routes to ``app`` as built: the same as ``app.include_router`` for
    a router with no dependencies, tags or lifespan of its own, without building every route a
    second time."""
    app.router.routes.extend(router.routes)


def create_sandbox_app(
    timing: SandboxTiming | None = None, access: SandboxAccess | None = None
) -> FastAPI:
    app = FastAPI(title="mediagate sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    mount(app, create_sandbox_router(timing or SandboxTiming(), access=access))
    return app
