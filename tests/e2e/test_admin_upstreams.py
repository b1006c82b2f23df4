"""The admin upstream view over HTTP: a provider account's balance, models and newest jobs, as
its emulator answers them (PixelAPI's ``GET /v1/models`` and ``GET /v1/account/usage``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.utils.deadlines import JOB_S, REQUEST_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.processes import ADMIN_TOKEN, Process

pytestmark = pytest.mark.e2e


@pytest.fixture
async def admin(live_gateway: Process) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=live_gateway.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=REQUEST_S,
    ) as c:
        yield c


async def test_pixelapis_view_lists_its_models_and_the_jobs_the_gateway_sent(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    body = {"image": {"data": png_b64()}, "provider": "pixelapi", "fallback": False}
    created = await client.post("/v1/images/remove-background", json=body)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    (job,) = (await wait_all_terminal(client, [job_id], JOB_S)).values()
    assert job["status"] == "succeeded", job
    task = job["attempts"][-1]["provider_job_id"]

    view = await admin.get("/admin/upstreams/pixelapi", params={"recent": 5})
    assert view.status_code == 200, view.text
    shown = view.json()
    assert shown["provider"] == "pixelapi" and shown["error"] is None
    assert shown["balance"]["unit"] == "credits"
    models = {model["id"]: model for model in shown["models"]}
    assert {"flux-schnell", "sdxl", "upscale-4x", "remove-background"} <= set(models)
    assert models["upscale-4x"]["endpoint"] == "POST /v1/image/upscale"
    assert models["upscale-4x"]["credits"] == 20.0
    assert 1 <= len(shown["recent_jobs"]) <= 5
    newest = shown["recent_jobs"][0]
    assert newest["id"] == task
    assert newest["status"] == "completed"
    assert newest["operation"] == "remove-background"
    assert newest["output_url"]


async def test_a_provider_that_lists_nothing_shows_nothing_and_an_unknown_one_is_404(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    quiet = (await admin.get("/admin/upstreams/everypixel")).raise_for_status().json()
    assert quiet["models"] is None and quiet["recent_jobs"] is None
    missing = await admin.get("/admin/upstreams/nobody")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    refused = await admin.get("/admin/upstreams/pixelapi", params={"recent": 0})
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    tenant = await client.get("/admin/upstreams/pixelapi")
    assert tenant.status_code in (401, 403)
