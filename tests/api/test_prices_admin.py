"""Price rules through the API: ``GET /v1/operations`` shows each rule, and admin overrides
are validated (an unknown operation, provider or unit is a 422 naming the field; nothing is
stored) before every process uses them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.config import SANDBOX_TENANT_KEY
from app.gateway import Gateway
from app.jobs.prices import PriceBook
from app.jobs.prices.book import ConfiguredPrice
from app.store import keys
from tests.utils.in_process import in_process_gateway

ADMIN = {"Authorization": "Bearer test-admin-token-prices-0123456789abcdef"}


@pytest.fixture
async def gateway(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    headers = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
    async with in_process_gateway(
        redis_url,
        tmp_path,
        headers=headers,
        sandbox=True,
        admin_token="test-admin-token-prices-0123456789abcdef",
    ) as built:
        yield built


async def binding(client: httpx.AsyncClient, operation: str, provider: str) -> dict[str, Any]:
    operations = (await client.get("/v1/operations")).raise_for_status().json()["data"]
    (op,) = [o for o in operations if o["name"] == operation]
    (found,) = [p for p in op["providers"] if p["name"] == provider]
    result: dict[str, Any] = found
    return result


async def test_operations_show_each_rule(gateway: tuple[Gateway, httpx.AsyncClient]) -> None:
    _, client = gateway
    speech = await binding(client, "audio.speech", "everypixel")
    assert speech["rule"] == {"unit": "1k_chars", "rate": "4", "cap": 10}
    assert speech["price"] == 40
    audio = await binding(client, "audio.generate", "pixelapi")
    assert audio["rule"] == {"unit": "second", "rate": "1/3", "cap": 30}
    assert audio["price"] == 10
    flat = await binding(client, "image.remove_background", "pixelapi")
    assert flat["rule"] == {"unit": "job", "rate": "4", "cap": 1}
    assert flat["price"] == 4
    generate = await binding(client, "image.generate", "imagepig")
    assert generate["rule"]["unit"] == "output"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"operation": "image.remove_bg", "provider": "pixelapi", "credits": 3}, "/operation"),
        ({"operation": "image.upscale", "provider": "pixelap", "credits": 3}, "/provider"),
        ({"operation": "image.upscale", "provider": "everypixel", "credits": 3}, "/provider"),
        (
            {"operation": "image.upscale", "provider": "pixelapi", "unit": "pixel", "rate": 1},
            "/unit",
        ),
        (
            {"operation": "image.upscale", "provider": "pixelapi", "unit": "second", "rate": "x"},
            "/rate",
        ),
        ({"operation": "image.upscale", "provider": "pixelapi", "unit": "second"}, "/rate"),
        ({"operation": "image.upscale", "provider": "pixelapi", "credits": -1}, "/credits"),
        (
            {"operation": "image.upscale", "provider": "pixelapi", "credits": 3, "rate": 1},
            "/credits",
        ),
        (
            {
                "operation": "image.upscale",
                "provider": "pixelapi",
                "unit": "second",
                "rate": 1,
                "cap": 0,
            },
            "/cap",
        ),
        ({"operation": "image.upscale", "provider": "pixelapi", "credit": 3}, "/credit"),
    ],
)
async def test_a_bad_override_is_refused_naming_the_field_and_nothing_is_stored(
    gateway: tuple[Gateway, httpx.AsyncClient],
    redis_client: Redis,
    body: dict[str, Any],
    pointer: str,
) -> None:
    _, client = gateway
    response = await client.put("/admin/prices", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "invalid_parameter"
    assert pointer in [e["pointer"] for e in problem["errors"]]
    assert await redis_client.hgetall(keys.PRICES) == {}


async def test_an_override_by_the_unit_is_used_at_once(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    _, client = gateway
    response = await client.put(
        "/admin/prices",
        json={
            "operation": "image.upscale",
            "provider": "pixelapi",
            "unit": "megapixel",
            "rate": "2.5",
            "cap": 300,
        },
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    (row,) = [
        p
        for p in response.json()["data"]
        if (p["operation"], p["provider"]) == ("image.upscale", "pixelapi")
    ]
    assert row["rule"] == {"unit": "megapixel", "rate": "2.5", "cap": 300}
    assert row["source"] == "override"
    shown = await binding(client, "image.upscale", "pixelapi")
    assert shown["rule"] == {"unit": "megapixel", "rate": "2.5", "cap": 300}
    flat = await client.put(
        "/admin/prices",
        json={"operation": "image.upscale", "provider": "pixelapi", "credits": 25},
        headers=ADMIN,
    )
    assert flat.status_code == 200
    assert (await binding(client, "image.upscale", "pixelapi"))["rule"]["rate"] == "25"


async def test_an_override_prices_the_next_job_in_every_process(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> None:
    """Each process keeps the overrides it has read; one made through another process
    empties that copy, so the next job there is priced by the override."""
    headers = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
    async with (
        in_process_gateway(
            redis_url,
            tmp_path / "here",
            headers=headers,
            sandbox=True,
            admin_token="test-admin-token-prices-0123456789abcdef",
        ) as (_, here),
        in_process_gateway(redis_url, tmp_path / "there", headers=headers, sandbox=True) as (
            _,
            there,
        ),
    ):
        job = {"prompt": "a lighthouse at dusk", "provider": "imagepig"}
        before = await there.post("/v1/images/generate", json=job)
        assert before.status_code == 202, before.text
        assert before.json()["credits"]["reserved"] == 2  # 2 per output, one output
        pinned = await here.put(
            "/admin/prices",
            json={"operation": "image.generate", "provider": "imagepig", "credits": 7},
            headers=ADMIN,
        )
        assert pinned.status_code == 200, pinned.text
        deadline = asyncio.get_running_loop().time() + 5
        while (await binding(there, "image.generate", "imagepig"))["rule"]["rate"] != "7":
            assert asyncio.get_running_loop().time() < deadline, "the other process never heard"
            await asyncio.sleep(0.01)
        after = await there.post("/v1/images/generate", json=job)
        assert after.status_code == 202, after.text
        credits = after.json()["credits"]
        assert (credits["reserved"], credits["unit"], credits["rate"]) == (7, "job", "7")


async def test_a_typo_in_the_prices_setting_stops_the_start(
    gateway: tuple[Gateway, httpx.AsyncClient], redis_client: Redis
) -> None:
    gw, _ = gateway
    providers = gw.accounting.prices.providers
    typos: list[tuple[Mapping[str, Mapping[str, ConfiguredPrice]], str]] = [
        ({"image.upscal": {"pixelapi": 3}}, "prices.image.upscal.pixelapi"),
        ({"image.upscale": {"pixelap": 3}}, "prices.image.upscale.pixelap"),
        ({"audio.speech": {"everypixel": {"unit": "char", "rate": 1}}}, "unknown unit"),
    ]
    for configured, named in typos:
        with pytest.raises(ValueError, match=named):
            PriceBook(redis_client, providers, configured)
    book = PriceBook(
        redis_client, providers, {"audio.speech": {"everypixel": {"unit": "1k_chars", "rate": 3}}}
    )
    (row,) = [
        p
        for p in await book.table()
        if (p.operation.value, p.provider) == ("audio.speech", "everypixel")
    ]
    assert (row.source, row.rule.rate) == ("config", 3)  # type: ignore[comparison-overlap]
