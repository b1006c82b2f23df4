"""Not one request reaches inside the network: a listener on loopback counts connections
while URLs in every spelling point at it — through the gateway's edge, its worker's fetches
and webhooks, and the sandbox emulators called directly. Redirects are not followed."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.sandbox.credentials import IMAGEPIG_API_KEY, IMAGEPIPELINE_API_KEY
from tests.hostile.conftest import Hostile, assert_problem, finished
from tests.utils.deadlines import JOB_S, REQUEST_S
from tests.utils.media import png_b64

pytestmark = pytest.mark.e2e

WAIT_S = JOB_S


def _spellings(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/a.png",
        f"http://localhost:{port}/a.png",
        f"http://127.1:{port}/a.png",
        f"http://2130706433:{port}/a.png",
        f"http://0x7f000001:{port}/a.png",
        f"http://[::ffff:127.0.0.1]:{port}/a.png",
        f"http://[::ffff:7f00:1]:{port}/a.png",
        f"http://[::127.0.0.1]:{port}/a.png",
        f"http://[64:ff9b::7f00:1]:{port}/a.png",
        f"http://[2002:7f00:1::]:{port}/a.png",
        f"http://[::1]:{port}/a.png",
        f"http://user@127.0.0.1:{port}/a.png",
        f"https://127.0.0.1:{port}/a.png",
    ]


async def test_the_edge_refuses_every_spelling_of_loopback(
    hostile: Hostile, tenant: httpx.AsyncClient
) -> None:
    for url in _spellings(hostile.listener.port):
        response = await tenant.post("/v1/images/upscale", json={"image": {"url": url}})
        assert_problem(response, 422, "unsafe_url", "/image/url")
        response = await tenant.post(
            "/v1/images/upscale", json={"image": {"data": png_b64()}, "callback_url": url}
        )
        assert_problem(response, 422, "unsafe_url", "/callback_url")
    assert hostile.listener.connections == []


async def test_redirects_to_loopback_are_not_followed(
    hostile: Hostile, tenant: httpx.AsyncClient
) -> None:
    """The redirecting server is allowed (``MEDIAGATE_URL_ALLOWLIST``); where it points is
    not, and neither the gateway nor an emulator follows it there."""
    media = f"{hostile.redirect_url}/a.png"
    hostile.redirect_hits.clear()
    for provider in ("imagepig", "pixelapi"):
        response = await tenant.post(
            "/v1/images/upscale", json={"image": {"url": media}, "provider": provider}
        )
        assert response.status_code == 202, response.text
        job = await finished(tenant, response.headers["location"])
        assert job["status"] == "failed", job
    response = await tenant.post(
        "/v1/images/upscale",
        json={"image": {"data": png_b64()}, "callback_url": f"{hostile.redirect_url}/hook"},
    )
    assert response.status_code == 202, response.text
    job = await finished(tenant, response.headers["location"])
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not (await tenant.get(f"/v1/jobs/{job['id']}/deliveries")).json()["data"]:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.2)
    assert "POST /hook" in hostile.redirect_hits  # the webhook was sent, and not redirected
    assert "GET /a.png" in hostile.redirect_hits  # the media was asked for, not followed
    assert hostile.listener.connections == []


async def test_the_emulators_fetch_through_the_guard(hostile: Hostile) -> None:
    """Called directly with their own credentials, the emulators refuse loopback URLs and
    redirects, like the gateway."""
    urls = [*_spellings(hostile.listener.port)[:6], f"{hostile.redirect_url}/a.png"]
    hostile.redirect_hits.clear()
    async with httpx.AsyncClient(base_url=f"{hostile.url}/_sandbox", timeout=REQUEST_S) as sandbox:
        for url in urls:
            response = await sandbox.post(
                "/imagepig/upscale",
                json={"image_url": url},
                headers={"Api-Key": IMAGEPIG_API_KEY},
            )
            assert response.status_code == 400, (url, response.text)
            response = await sandbox.post(
                "/imagepipeline/identity/faceswap/image/v1",
                json={"target": url, "source": url},
                headers={"x-api-key": IMAGEPIPELINE_API_KEY},
            )
            assert response.status_code in (400, 422), (url, response.text)
    assert hostile.redirect_hits.count("GET /a.png") == 2  # reached, its redirect not followed
    assert hostile.listener.connections == []
