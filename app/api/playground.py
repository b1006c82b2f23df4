"""The playground: a page at ``/playground`` that runs any operation from a browser.

Everything it needs comes from the gateway itself: the page, its script and style from
``app/api/assets``, the operations from ``GET /v1/operations``, their parameters from the
OpenAPI document, styles and voices from the catalog. The API key is pasted into the page and
kept in its memory; it only ever travels as the ``Authorization`` header of the user's own
requests. A Content-Security-Policy keeps the page from loading code from elsewhere, while
artifacts (images, audio, video) may come from wherever their signed URLs point.

Off in production unless ``MEDIAGATE_PLAYGROUND=true``; on elsewhere unless set to false.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from app.config import Settings

PLAYGROUND_URL = "/playground"
ASSETS_URL = "/playground/assets"
ASSETS_DIR = Path(str(files("app.api") / "assets"))

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src * data: blob:",  # artifacts: signed URLs, perhaps an object store's
        "media-src * blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
    )
)


def enabled(settings: Settings) -> bool:
    if settings.playground is not None:
        return settings.playground
    return settings.environment != "production"


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the page and its assets when the settings allow it."""
    if not enabled(settings):
        return
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="playground_assets")

    async def playground() -> FileResponse:
        return FileResponse(
            ASSETS_DIR / "playground.html",
            media_type="text/html",
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )

    app.add_api_route(PLAYGROUND_URL, playground, methods=["GET"], include_in_schema=False)
