"""The storage quota when a job's outputs are stored, against a live gateway whose retention
is the default (nothing is swept while the test runs)."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from app.sandbox import images
from tests.utils.deadlines import JOB_S, REQUEST_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.net import with_db
from tests.utils.processes import ADMIN_TOKEN, Process, gateway

QUOTA = 100_000
TIMEOUT_S = JOB_S


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-quota")


@pytest.fixture(scope="module")
def live(redis_url: str, data_dir: Path) -> Iterator[Process]:
    settings = {"MEDIAGATE_TENANT_STORAGE_QUOTA_BYTES": str(QUOTA)}
    with gateway(with_db(redis_url, 13), data_dir, **settings) as proc:
        yield proc


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def client(live: Process) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, headers=ADMIN, timeout=TIMEOUT_S) as c:
        created = await c.post("/admin/tenants", json={"name": "full"})
        tenant_id = created.raise_for_status().json()["id"]
        key = (await c.post(f"/admin/tenants/{tenant_id}/keys")).raise_for_status().json()["key"]
        granted = await c.post(
            f"/admin/tenants/{tenant_id}/credits", json={"amount": 1000, "reason": "test"}
        )
        granted.raise_for_status()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=TIMEOUT_S) as c:
        yield c


async def test_an_output_beyond_the_quota_fails_the_job_and_is_not_stored(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    """An upload leaves less room than one generated image takes: the job that makes it ends
    ``failed`` with ``storage_quota_exceeded`` and no output is written."""
    image = Image.frombytes("RGB", (180, 180), os.urandom(180 * 180 * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    upload = buffer.getvalue()
    output_size = len(images.render(1024, 1024, "png", 1))  # what the emulator will answer
    assert QUOTA - output_size < len(upload) <= QUOTA
    stored = await client.post("/v1/files", files={"file": ("a.png", upload, "image/png")})
    assert stored.status_code == 201, stored.text

    created = await client.post(
        "/v1/images/generate",
        json={"prompt": "a pig", "provider": "pixelapi", "fallback": False},
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    job = (await wait_all_terminal(client, [job_id], TIMEOUT_S))[job_id]
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "storage_quota_exceeded"
    assert job["output"] is None or not job["output"]["artifacts"]

    account = (await client.get("/v1/account")).json()
    assert account["storage"] == {"used_bytes": len(upload), "quota_bytes": QUOTA}
    on_disk = [path for path in (data_dir / "blobs").rglob("*") if path.is_file()]
    assert [path.name for path in on_disk] == [stored.json()["id"]]

    # the tenant's own, larger quota (admin API): the same job now keeps its output
    async with httpx.AsyncClient(
        base_url=str(client.base_url), headers=ADMIN, timeout=REQUEST_S
    ) as admin:
        raised = await admin.patch(
            f"/admin/tenants/{account['tenant_id']}", json={"storage_quota_bytes": 2 * QUOTA}
        )
    assert raised.status_code == 200, raised.text
    assert raised.json()["storage_quota_bytes"] == 2 * QUOTA
    again = await client.post(
        "/v1/images/generate",
        json={"prompt": "a pig", "provider": "pixelapi", "fallback": False},
    )
    again_id = again.json()["id"]
    done = (await wait_all_terminal(client, [again_id], TIMEOUT_S))[again_id]
    assert done["status"] == "succeeded", done
    storage = (await client.get("/v1/account")).json()["storage"]
    kept = len(upload) + done["output"]["artifacts"][0]["bytes"]
    assert storage == {"used_bytes": kept, "quota_bytes": 2 * QUOTA}


async def test_a_waited_job_whose_output_is_beyond_the_quota_fails_and_keeps_nothing(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    """The client waits (``Prefer: wait``): the job's output is written, its terminal save
    finds it beyond the quota, and the bytes are deleted before the job ends ``failed`` with
    ``storage_quota_exceeded``."""
    tenant_id = (await client.get("/v1/account")).json()["tenant_id"]
    async with httpx.AsyncClient(
        base_url=str(client.base_url), headers=ADMIN, timeout=REQUEST_S
    ) as admin:
        tiny = await admin.patch(f"/admin/tenants/{tenant_id}", json={"storage_quota_bytes": 1})
    assert tiny.status_code == 200, tiny.text
    before = {path for path in (data_dir / "blobs").rglob("*") if path.is_file()}

    answer = await client.post(
        "/v1/images/generate",
        json={"prompt": "a pig", "provider": "imagepig", "fallback": False},
        headers={"Prefer": f"wait={int(TIMEOUT_S)}"},
    )
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "storage_quota_exceeded"
    assert job["output"] is None or not job["output"]["artifacts"]
    account = (await client.get("/v1/account")).json()
    assert account["storage"] == {"used_bytes": 0, "quota_bytes": 1}
    assert {path for path in (data_dir / "blobs").rglob("*") if path.is_file()} == before
