"""``HEAD`` on every ``GET`` route (``app.api.methods``): the ``GET``'s status and header
fields, errors included, and no body sent by the application itself; counted, authenticated
and rate-limited as the ``GET``. And a ``405`` names every method its path takes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.config import SANDBOX_TENANT_KEY
from app.gateway import Gateway
from app.store import keys
from tests.utils.deadlines import REQUEST_S
from tests.utils.in_process import SentBodies, in_process_gateway

AUTH = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
ADMIN_TOKEN = "test-admin-token-0123456789abcdefghij"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GENERATE = "/v1/images/generate"
PROMPT = {"prompt": "a lighthouse at dusk", "provider": "imagepig"}
MISSING = "/v1/jobs/job_0123456789abcdef0123456789ab"
PROBLEM = "application/problem+json"


@dataclass
class App:
    gateway: Gateway
    client: httpx.AsyncClient
    bodies: SentBodies
    registry: CollectorRegistry


@pytest.fixture
async def app(redis_url: str, redis_client: Redis, tmp_path: Path) -> AsyncIterator[App]:
    registry = CollectorRegistry()
    async with in_process_gateway(
        redis_url,
        tmp_path,
        registry=registry,
        sandbox=True,
        admin_token=ADMIN_TOKEN,
        tenant_max_event_streams=1,
    ) as (gateway, client):
        yield App(gateway, client, SentBodies(client), registry)


def _fields(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k != "x-request-id"}


async def head_like_get(
    app: App, url: str, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, httpx.Response]:
    """The ``GET`` of ``url``, then its ``HEAD``: same status and header fields, and the
    application sent no body for the ``HEAD``."""
    get = await app.client.get(url, headers=headers)
    app.bodies.sent()
    head = await app.client.head(url, headers=headers)
    assert app.bodies.sent() == b""
    assert head.status_code == get.status_code, (url, head.status_code, get.text)
    assert _fields(head) == _fields(get)
    assert head.headers["content-length"] == str(len(get.content))
    return get, head


def _requests(app: App, route: str, method: str, status: int) -> float:
    labels = {"route": route, "method": method, "status": str(status)}
    return app.registry.get_sample_value("mediagate_http_requests_total", labels) or 0.0


async def test_a_head_of_a_job_is_its_get_without_the_body(app: App) -> None:
    created = await app.client.post(GENERATE, json=PROMPT, headers=AUTH)
    url = created.headers["location"]
    get, head = await head_like_get(app, url, AUTH)
    assert head.status_code == 200 and head.headers["content-type"] == "application/json"
    assert int(head.headers["content-length"]) > 0
    assert _requests(app, "/v1/jobs/{job_id}", "HEAD", 200) == 1
    assert _requests(app, "/v1/jobs/{job_id}", "GET", 200) == 1


async def test_a_head_of_an_unknown_job_is_the_404_without_the_body(app: App) -> None:
    get, head = await head_like_get(app, MISSING, AUTH)
    assert head.status_code == 404 and head.headers["content-type"] == PROBLEM
    assert get.json()["code"] == "not_found"


@pytest.mark.parametrize("url", [MISSING, "/v1/jobs", "/v1/account"])
async def test_a_head_without_a_key_is_the_401(app: App, url: str) -> None:
    get, head = await head_like_get(app, url)
    assert head.status_code == 401 and head.headers["content-type"] == PROBLEM
    assert get.json()["code"] == "unauthenticated"


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/v1/jobs", AUTH),
        ("/v1/jobs?status=queued&limit=5", AUTH),
        ("/v1/account", AUTH),
        ("/v1/operations", AUTH),
        ("/v1/jobs?limit=1000", AUTH),  # the GET's 422
        ("/healthz", None),
        ("/readyz", None),  # no worker: the GET's 503
        ("/openapi.json", None),
        ("/admin/tenants", ADMIN),
        ("/admin/tenants", AUTH),  # not the admin token: the GET's refusal
        ("/nowhere", None),  # the GET's 404
    ],
)
async def test_a_head_of_a_fastapi_route_is_its_get_without_the_body(
    app: App, url: str, headers: dict[str, str] | None
) -> None:
    await head_like_get(app, url, headers)


async def test_a_head_of_the_metrics_is_counted_and_has_no_body(app: App) -> None:
    head = await app.client.head("/metrics")
    assert app.bodies.sent() == b""
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/plain")
    assert _requests(app, "/metrics", "HEAD", 200) == 1


async def test_a_head_counts_against_the_tenant_s_rate(app: App) -> None:
    tenant = await app.gateway.tenants.create("slow", rate_limit_rpm=1)
    _, key = await app.gateway.tenants.add_key(tenant.id)
    auth = {"Authorization": f"Bearer {key}"}
    assert (await app.client.head(MISSING, headers=auth)).status_code == 404
    refused = await app.client.get(MISSING, headers=auth)
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    app.bodies.sent()
    head = await app.client.head("/v1/jobs", headers=auth)
    assert app.bodies.sent() == b""
    assert head.status_code == 429 and "retry-after" in head.headers


async def test_a_head_of_an_event_stream_ends_after_its_headers(app: App) -> None:
    """The stream of a job still queued would run on; its ``HEAD`` ends with the headers and
    gives the tenant's stream slot back (one allowed here: the second ``HEAD`` gets it)."""
    created = await app.client.post(GENERATE, json=PROMPT, headers=AUTH)
    url = f"{created.headers['location']}/events"
    app.bodies.sent()
    for _ in range(2):
        async with asyncio.timeout(REQUEST_S):
            head = await app.client.head(url, headers=AUTH)
        assert head.status_code == 200, head.headers
        assert head.headers["content-type"].startswith("text/event-stream")
        assert head.headers["cache-control"] == "no-cache"
    assert app.bodies.sent() == b""
    slots = keys.concurrency_slots("event-streams:{sandbox}")
    assert await app.gateway.redis.zcard(slots) == 0


async def test_an_unexpected_error_on_a_head_is_a_500_without_a_body(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answered by the server-error layer, outside every other: still no body."""

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("broken")

    monkeypatch.setattr(app.gateway.catalog, "operations", broken)
    raising = app.client._transport
    assert isinstance(raising, httpx.ASGITransport)
    raising.raise_app_exceptions = False
    get = await app.client.get("/v1/operations", headers=AUTH)
    app.bodies.sent()
    head = await app.client.head("/v1/operations", headers=AUTH)
    assert app.bodies.sent() == b""
    assert head.status_code == get.status_code == 500
    assert _fields(head) == _fields(get)


@pytest.mark.parametrize(
    ("method", "url", "allow", "headers"),
    [
        ("DELETE", MISSING, "GET, HEAD", AUTH),  # the fast lane's path, answered by FastAPI
        ("POST", "/v1/jobs", "GET, HEAD", AUTH),
        ("PUT", "/admin/tenants/t_1", "GET, HEAD, PATCH", ADMIN),  # two routes at one path
        ("GET", GENERATE, "POST", AUTH),
        ("HEAD", GENERATE, "POST", AUTH),
        ("DELETE", "/docs/assets/swagger-ui.css", "GET, HEAD", None),  # the static assets
    ],
)
async def test_a_405_names_every_method_its_path_takes(
    app: App, method: str, url: str, allow: str, headers: dict[str, str] | None
) -> None:
    app.bodies.sent()
    answer = await app.client.request(method, url, headers=headers)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    assert answer.headers["content-type"] == PROBLEM
    if method != "HEAD":
        assert answer.json()["code"] == "invalid_parameter"
        assert answer.json()["errors"][0]["pointer"] == "/method"
    else:
        assert app.bodies.sent() == b""
