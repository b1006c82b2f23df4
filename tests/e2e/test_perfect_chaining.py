"""Perfect Corp chaining over HTTP: an output of an earlier job, passed as ``artifact_id``, goes
into the next Perfect task by its ``dst_id``; the emulator sees no second file call or upload.
Another tenant's artifact is not found."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.utils.clients import admin_client, new_tenant
from tests.utils.deadlines import JOB_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.processes import Process
from tests.utils.sandbox import CONTROL

pytestmark = pytest.mark.e2e


async def _perfect(client: httpx.AsyncClient, route: str, body: dict[str, Any]) -> dict[str, Any]:
    created = await client.post(route, json={**body, "provider": "perfectcorp", "fallback": False})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    (job,) = (await wait_all_terminal(client, [job_id], JOB_S)).values()
    assert job["status"] == "succeeded", job
    return job


async def _uploads(client: httpx.AsyncClient) -> tuple[int, int]:
    stats = (await client.get("/_sandbox/stats", headers=CONTROL)).json()["perfectcorp"]
    by_endpoint = stats["by_endpoint"]
    file_calls = sum(n for name, n in by_endpoint.items() if "/file/" in name)
    return file_calls, by_endpoint.get("PUT /upload", 0)


async def test_an_earlier_perfect_output_is_chained_without_a_second_upload(
    client: httpx.AsyncClient,
) -> None:
    first = await _perfect(client, "/v1/images/colorize", {"image": {"data": png_b64(64, 64)}})
    (artifact,) = first["output"]["artifacts"]
    files_before, uploads_before = await _uploads(client)
    assert uploads_before >= 1  # the first job's input went up

    second = await _perfect(
        client,
        "/v1/images/remove-background",
        {"image": {"artifact_id": artifact["id"]}},
    )
    assert second["input"]["image"] == {"artifact_id": artifact["id"]}
    assert second["attempts"][-1]["conformed"] == []
    assert await _uploads(client) == (files_before, uploads_before)
    (cut_out,) = second["output"]["artifacts"]
    assert (cut_out["width"], cut_out["height"]) == (artifact["width"], artifact["height"])


async def test_an_artifact_goes_to_another_provider_as_bytes(client: httpx.AsyncClient) -> None:
    first = await _perfect(client, "/v1/images/colorize", {"image": {"data": png_b64(64, 64)}})
    (artifact,) = first["output"]["artifacts"]
    body = {"image": {"artifact_id": artifact["id"]}, "provider": "pixelapi", "fallback": False}
    created = await client.post("/v1/images/remove-background", json=body)
    assert created.status_code == 202, created.text
    (job,) = (await wait_all_terminal(client, [created.json()["id"]], JOB_S)).values()
    assert job["status"] == "succeeded", job


async def test_another_tenants_or_an_unknown_artifact_is_not_found(
    client: httpx.AsyncClient, live_gateway: Process
) -> None:
    first = await _perfect(client, "/v1/images/colorize", {"image": {"data": png_b64(64, 64)}})
    (artifact,) = first["output"]["artifacts"]
    async with admin_client(live_gateway) as admin:
        _, key = await new_tenant(admin, "other", credits=1000)
    for artifact_id, headers in (
        (artifact["id"], {"Authorization": f"Bearer {key}"}),
        ("art_doesnotexist", {}),
    ):
        body = {"image": {"artifact_id": artifact_id}, "provider": "perfectcorp"}
        refused = await client.post("/v1/images/remove-background", json=body, headers=headers)
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["code"] == "not_found"
        assert [e["pointer"] for e in problem["errors"]] == ["/image/artifact_id"]
    both = {"image": {"artifact_id": artifact["id"], "file_id": "file_x"}}
    refused = await client.post("/v1/images/remove-background", json=both)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
