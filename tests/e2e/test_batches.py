"""Batches end to end: a gateway process with its worker and the sandbox, over real HTTP.

Items run as ordinary jobs under the upstream budgets (Everypixel's documented 30 requests
per second, never exceeded) and the tenant's credits, reserved per item as it starts: a tenant
with credits for 300 items gets exactly 300 done and the rest failed, balance 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import SANDBOX_KEY
from tests.utils.media import png_bytes
from tests.utils.net import with_db
from tests.utils.processes import ADMIN_TOKEN, Process, gateway
from tests.utils.receivers import receiving

pytestmark = [pytest.mark.e2e, pytest.mark.long]

WAIT_S = 300.0
"""However busy the machine, a batch ends well within this."""


@pytest.fixture(scope="module")
def batch_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    data_dir: Path = tmp_path_factory.mktemp("batches")
    with gateway(
        with_db(redis_url, 6),
        data_dir,
        MEDIAGATE_BATCH_WINDOW="200",
        MEDIAGATE_URL_ALLOWLIST='["127.0.0.1/32"]',
    ) as proc:
        yield proc


@pytest.fixture
async def admin(batch_gateway: Process) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=batch_gateway.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=60,
    ) as client:
        await client.delete("/_sandbox/faults")
        yield client


def tenant_client(gateway_url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


async def upload(client: httpx.AsyncClient) -> str:
    files = {"file": ("square.png", png_bytes(48, 48), "image/png")}
    response = await client.post("/v1/files", files=files)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def wait_completed(client: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        batch: dict[str, Any] = (await client.get(f"/v1/batches/{batch_id}")).json()
        if batch["status"] == "completed" or loop.time() > deadline:
            return batch
        await asyncio.sleep(0.5)


async def all_items(client: httpx.AsyncClient, batch_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, int | str] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/batches/{batch_id}/jobs", params=params)).json()
        items.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def no_result_cache(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    """The sandbox tenant without the result cache: every item of one image runs upstream."""
    patched = await admin.patch("/admin/tenants/sandbox", json={"result_cache_ttl_s": 0})
    assert patched.status_code == 200, patched.text
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while (await client.get("/v1/account")).json()["result_cache"]["ttl_s"] != 0:
        assert loop.time() < deadline  # every process has heard of the change
        await asyncio.sleep(0.1)


async def test_1000_keyword_items_all_succeed_within_everypixels_rate(
    batch_gateway: Process, admin: httpx.AsyncClient
) -> None:
    async with tenant_client(batch_gateway.url, SANDBOX_KEY) as client, receiving() as hooks:
        await no_result_cache(admin, client)
        file_id = await upload(client)
        items = [{"image": {"file_id": file_id}, "metadata": {"i": i}} for i in range(1000)]
        body = {"operation": "image.keywords", "items": items, "callback_url": hooks.url}
        created = await client.post("/v1/batches", json=body)
        assert created.status_code == 202, created.text
        batch = await wait_completed(client, created.json()["id"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while not hooks.requests:
            assert loop.time() < deadline
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # time for a second webhook, if one were coming
        events = hooks.events()
        assert [e["type"] for e in events] == ["batch.completed"]  # exactly once
        assert events[0]["data"]["id"] == batch["id"]
        assert events[0]["data"]["counts"]["succeeded"] == 1000

        assert batch["status"] == "completed"
        assert batch["counts"] == {
            "pending": 0,
            "running": 0,
            "succeeded": 1000,
            "failed": 0,
            "canceled": 0,
        }
        assert batch["progress"] == 1.0
        listed = await all_items(client, batch["id"])
        assert [item["index"] for item in listed] == list(range(1000))
        assert {item["status"] for item in listed} == {"succeeded"}
        assert len({item["job_id"] for item in listed}) == 1000  # one job per item
        job = (await client.get(f"/v1/jobs/{listed[7]['job_id']}")).json()
        assert job["metadata"] == {"i": 7} and job["output"]["data"]["keywords"]
    stats = (await admin.get("/_sandbox/stats")).json()["everypixel"]
    assert stats["over_limit"] == 0
    assert stats["submissions"] == 1000  # the first test of this gateway


async def test_a_tenant_with_credits_for_300_items_gets_exactly_300(
    batch_gateway: Process, admin: httpx.AsyncClient
) -> None:
    limits = {"rate_limit_rpm": 1_000_000, "max_concurrent_jobs": 1000}
    no_cache = {"result_cache_ttl_s": 0}  # every item of the one image runs and is charged
    body = {"name": "thrifty", **limits, **no_cache}
    tenant = (await admin.post("/admin/tenants", json=body)).json()
    key = (await admin.post(f"/admin/tenants/{tenant['id']}/keys")).json()["key"]
    async with tenant_client(batch_gateway.url, key) as client:
        catalog = (await client.get("/v1/operations", params={"limit": 100})).json()["data"]
        keywords = next(op for op in catalog if op["name"] == "image.keywords")
        price = next(p["price"] for p in keywords["providers"] if p["name"] == "everypixel")
        granted = await admin.post(
            f"/admin/tenants/{tenant['id']}/credits",
            json={"amount": 300 * price, "reason": "test"},
        )
        assert granted.status_code == 200, granted.text
        file_id = await upload(client)
        items = [{"image": {"file_id": file_id}, "provider": "everypixel"} for _ in range(450)]
        created = await client.post(
            "/v1/batches", json={"operation": "image.keywords", "items": items}
        )
        assert created.status_code == 202, created.text
        batch = await wait_completed(client, created.json()["id"])

        assert batch["status"] == "completed"
        assert batch["counts"]["succeeded"] == 300
        assert batch["counts"]["failed"] == 150
        listed = await all_items(client, batch["id"])
        failed = [item for item in listed if item["status"] == "failed"]
        assert {item["error"]["code"] for item in failed} == {"insufficient_credits"}
        assert all(item["job_id"] is None for item in failed)  # never became jobs
        account = (await client.get("/v1/account")).json()
        assert account["balance"] == 0 and account["reserved"] == 0


async def test_canceling_a_batch_ends_every_item(
    batch_gateway: Process, admin: httpx.AsyncClient
) -> None:
    async with tenant_client(batch_gateway.url, SANDBOX_KEY) as client:
        await no_result_cache(admin, client)
        file_id = await upload(client)
        # PixelAPI upscaling is asynchronous (0.3 s sandbox jobs): some items are running
        items = [{"image": {"file_id": file_id}, "provider": "pixelapi"} for _ in range(400)]
        created = await client.post(
            "/v1/batches", json={"operation": "image.upscale", "items": items}
        )
        assert created.status_code == 202, created.text
        batch_id = created.json()["id"]
        while (await client.get(f"/v1/batches/{batch_id}")).json()["counts"]["running"] == 0:
            await asyncio.sleep(0.05)
        canceled = await client.post(f"/v1/batches/{batch_id}/cancel")
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] in ("canceling", "completed")
        assert canceled.json()["counts"]["pending"] == 0

        batch = await wait_completed(client, batch_id)
        counts = batch["counts"]
        assert batch["status"] == "completed"
        assert counts["pending"] == counts["running"] == 0
        assert counts["canceled"] > 0
        assert counts["succeeded"] + counts["failed"] + counts["canceled"] == 400
        listed = await all_items(client, batch_id)
        assert all(item["status"] in ("succeeded", "failed", "canceled") for item in listed)
        for item in listed:
            if item["job_id"] is not None:
                job = (await client.get(f"/v1/jobs/{item['job_id']}")).json()
                assert job["status"] == item["status"]
        again = await client.post(f"/v1/batches/{batch_id}/cancel")
        assert again.status_code == 200 and again.json()["counts"] == counts


async def test_bad_items_are_refused_with_a_pointer_and_nothing_runs(
    batch_gateway: Process, admin: httpx.AsyncClient
) -> None:
    before = (await admin.get("/_sandbox/stats")).json()
    async with tenant_client(batch_gateway.url, SANDBOX_KEY) as client:
        items = [{"image": {"url": "https://example.com/a.png"}}, {"image": {"bogus": 1}}]
        refused = await client.post(
            "/v1/batches", json={"operation": "image.keywords", "items": items}
        )
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert problem["code"] == "invalid_parameter"
        assert any(e["pointer"].startswith("/items/1/image") for e in problem["errors"])
        for body, pointer in (
            ({"operation": "image.nope", "items": [{}]}, "/operation"),
            ({"operation": "image.keywords", "items": []}, "/items"),
        ):
            answer = await client.post("/v1/batches", json=body)
            assert answer.status_code == 422
            assert answer.json()["errors"][0]["pointer"] == pointer
        unknown = await client.get("/v1/batches/batch_0123456789abcdef0123456789")
        assert unknown.status_code == 404
        bad_cursor = await client.get("/v1/batches/batch_x/jobs", params={"cursor": "x"})
        assert bad_cursor.status_code == 422
    assert (await admin.get("/_sandbox/stats")).json() == before
