"""A parameter a provider requires is not one it cannot honour: a request without it answers
422 ``missing_parameter`` at the edge, naming the field and the providers that do not need it;
nothing is stored, charged or sent upstream. The catalog lists what each provider requires."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.config import SANDBOX_TENANT_KEY
from app.gateway import Gateway
from app.store import keys
from tests.utils.in_process import in_process_gateway
from tests.utils.media import png_b64

PERSON = {"data": png_b64(300, 400)}
GARMENT = {"data": png_b64(300, 300)}


@pytest.fixture
async def app(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    headers = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
    async with in_process_gateway(redis_url, tmp_path, headers=headers, sandbox=True) as built:
        yield built


async def nothing_happened(gateway: Gateway, before: dict[str, Any]) -> None:
    """No job stored (so none can reach an upstream), no file kept, no credits held."""
    redis = gateway.redis
    assert await redis.zcard(keys.tenant_jobs("sandbox")) == 0
    assert await redis.zcard(keys.DUE) == 0
    assert not [f for f in (gateway.settings.data_dir / "blobs").rglob("*") if f.is_file()]
    account = await gateway.accounting.ledger.account("sandbox")
    assert account.reserved == 0 and account.balance == before["balance"]


def missing(response: httpx.Response, parameter: str, provider: str) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "missing_parameter"
    assert problem["errors"][0]["pointer"] == f"/{parameter}"
    assert (problem["parameter"], problem["provider"]) == (parameter, provider)
    assert parameter in problem["detail"] and provider in problem["detail"]
    not_needing: list[str] = problem["providers_not_requiring"]
    return not_needing


@pytest.mark.parametrize(
    ("route", "body", "parameter", "provider", "others"),
    [
        (
            "/v1/images/try-on",
            {"person": PERSON, "garment": GARMENT, "category": "upper_body"},
            "gender",
            "imagepipeline",
            ["pixelapi"],
        ),
        ("/v1/images/generate", {"prompt": "a lighthouse at dusk"}, "style_id", "perfectcorp",
         ["pixelapi", "imagepig"]),
        ("/v1/images/hairstyle", {"image": {"data": png_b64(64, 64)}}, "style_id",
         "perfectcorp", []),
    ],
)  # fmt: skip
async def test_a_request_without_a_parameter_its_provider_requires(
    app: tuple[Gateway, httpx.AsyncClient],
    route: str,
    body: dict[str, Any],
    parameter: str,
    provider: str,
    others: list[str],
) -> None:
    gateway, client = app
    before = (await client.get("/v1/account")).json()
    response = await client.post(route, json={**body, "provider": provider})
    assert set(missing(response, parameter, provider)) == set(others)
    await nothing_happened(gateway, before)


async def test_the_catalog_lists_what_each_provider_requires(
    app: tuple[Gateway, httpx.AsyncClient],
) -> None:
    _, client = app
    operations = {op["name"]: op for op in (await client.get("/v1/operations")).json()["data"]}

    def required(operation: str) -> dict[str, list[str]]:
        return {p["name"]: p["required"] for p in operations[operation]["providers"]}

    assert required("image.try_on")["imagepipeline"] == ["category", "gender"]
    assert required("image.try_on")["pixelapi"] == []
    assert required("image.generate")["perfectcorp"] == ["style_id"]
    assert required("image.hairstyle")["perfectcorp"] == ["style_id"]
    parameters = {
        p["name"]: p["required"]
        for b in operations["image.try_on"]["providers"]
        if b["name"] == "imagepipeline"
        for p in b["parameters"]
    }
    assert parameters["gender"] is True and parameters["person"] is False


async def test_fallbacks_that_cannot_serve_the_request_are_skipped(
    app: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gateway, client = app
    response = await client.post(
        "/v1/images/try-on",
        json={
            "person": PERSON,
            "garment": GARMENT,
            "provider": "pixelapi",
            "fallback": ["imagepipeline"],
        },
    )
    assert response.status_code == 202, response.text
    stored = await gateway.jobs.store.get(response.json()["id"])
    assert stored is not None and stored.record.plan == ["pixelapi"]


async def test_without_a_choice_the_provider_that_can_serve_it_is_chosen(
    app: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gateway, client = app
    response = await client.post(
        "/v1/images/try-on", json={"person": PERSON, "garment": GARMENT, "category": "dress"}
    )
    assert response.status_code == 202, response.text
    stored = await gateway.jobs.store.get(response.json()["id"])
    assert stored is not None
    assert "imagepipeline" not in stored.record.plan
