"""A gateway process whose disk refuses to store outputs, and Image Pig, which answers a
submission with its result: the result is paid for once. The job ends ``failed`` with
``store_unavailable``, its tenant charged nothing, the upstream's cost on record and listed by
reconciliation; once the disk takes writes again, the same request succeeds."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.deadlines import JOB_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.net import with_db
from tests.utils.processes import ADMIN_TOKEN, Process, gateway
from tests.utils.sandbox import CONTROL

pytestmark = pytest.mark.e2e

IMAGEPIG_PRICE = 2
"""Image Pig's generated image: two standard calls (its document), one output."""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("output-store-faults")


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, data_dir: Path) -> Iterator[Process]:
    """The writes of an output are tried again within the lease: a short one here."""
    with gateway(with_db(redis_url, 2), data_dir, MEDIAGATE_LEASE_S="2") as proc:
        yield proc


async def submissions(client: httpx.AsyncClient) -> int:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return int(stats.get("imagepig", {}).get("submissions", 0))


async def generate(client: httpx.AsyncClient) -> dict[str, Any]:
    """An Image Pig picture the client waits for; the job once it has ended."""
    response = await client.post(
        "/v1/images/generate",
        json={"prompt": "a pig", "provider": "imagepig", "fallback": False},
        headers={"Prefer": "wait=30"},
    )
    assert response.status_code in (200, 202), response.text
    job_id: str = response.json()["id"]
    return (await wait_all_terminal(client, [job_id], JOB_S))[job_id]


async def test_a_result_the_disk_refuses_is_paid_once_and_not_charged(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    partial = data_dir / "blobs" / ".partial"  # where every blob is written first
    shutil.rmtree(partial)
    partial.write_bytes(b"")  # a file: each write fails as on a disk that refuses it
    since = datetime.now(UTC) - timedelta(seconds=1)
    submitted = await submissions(client)
    balance = (await client.get("/v1/account")).json()["balance"]
    try:
        job = await generate(client)
    finally:
        partial.unlink()
        partial.mkdir()

    assert await submissions(client) - submitted == 1
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "store_unavailable"
    assert job["output"] is None
    [attempt] = job["attempts"]
    assert attempt["charge_reason"] == "undelivered"
    assert attempt["upstream_cost"] == IMAGEPIG_PRICE
    assert job["credits"]["charged"] == 0
    assert (await client.get("/v1/account")).json()["balance"] == balance
    async with httpx.AsyncClient(
        base_url=str(client.base_url), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as admin:
        report = (await admin.get("/admin/reconcile", params={"since": since.isoformat()})).json()
    [unpaid] = [u for u in report["unpaid"] if u["job_id"] == job["id"]]
    assert (unpaid["reason"], unpaid["upstream_cost"]) == ("undelivered", IMAGEPIG_PRICE)
    assert report["unexplained"] == 0

    again = await generate(client)  # the disk takes writes again
    assert again["status"] == "succeeded", again
    assert await submissions(client) - submitted == 2
    assert again["credits"]["charged"] == IMAGEPIG_PRICE
    assert (await client.get("/v1/account")).json()["balance"] == balance - IMAGEPIG_PRICE
