"""``Cancel-After``: a job still unfinished when the client's deadline passes ends canceled,
charged by the lifecycle's rule (the upstream had accepted its task: charged by default)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway

pytestmark = pytest.mark.e2e

WAIT_S = 120.0


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """Asynchronous sandbox jobs take 10 s upstream."""
    data_dir: Path = tmp_path_factory.mktemp("cancel-after")
    with gateway(with_db(redis_url, 7), data_dir, MEDIAGATE_SANDBOX_JOB_S="10") as proc:
        yield proc


def seconds(job: dict[str, object], start: str, end: str) -> float:
    return (
        datetime.fromisoformat(str(job[end])) - datetime.fromisoformat(str(job[start]))
    ).total_seconds()


async def test_a_10_second_job_with_cancel_after_2_is_canceled_at_2_s(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/v1/images/upscale",
        json={"image": {"data": png_b64()}, "provider": "pixelapi"},
        headers={"Cancel-After": "2"},
    )
    assert created.status_code == 202, created.text
    job = (await wait_all_terminal(client, [created.json()["id"]], timeout_s=WAIT_S)).popitem()[1]

    assert job["status"] == "canceled", job
    assert 2.0 <= seconds(job, "created_at", "completed_at") < 10.0  # before the upstream ended
    attempt = job["attempts"][-1]
    assert attempt["error"]["code"] == "job_canceled"
    assert "Cancel-After" in attempt["error"]["message"]
    assert attempt["provider_job_id"]  # the upstream had accepted the task …
    assert attempt["charge_reason"] == "canceled_after_accept"
    assert job["credits"]["charged"] == job["credits"]["reserved"] > 0  # … so it is paid for


async def test_a_job_that_ends_first_is_left_alone(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64()}, "provider": "imagepig"},
        headers={"Cancel-After": "60"},
    )
    assert created.status_code == 202, created.text
    job = (await wait_all_terminal(client, [created.json()["id"]], timeout_s=WAIT_S)).popitem()[1]
    assert job["status"] == "succeeded"


@pytest.mark.parametrize("value", ["0", "-1", "soon", "1e3", "604801", "9" * 5000])
async def test_a_bad_cancel_after_is_refused_and_nothing_is_created(
    client: httpx.AsyncClient, value: str
) -> None:
    before = [j["id"] for j in (await client.get("/v1/jobs", params={"limit": 100})).json()["data"]]
    answer = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64()}},
        headers={"Cancel-After": value},
    )
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert problem["code"] == "invalid_parameter"
    assert problem["errors"][0]["pointer"] == "/headers/Cancel-After"
    after = (await client.get("/v1/jobs", params={"limit": 100})).json()["data"]
    assert [j["id"] for j in after] == before  # nothing created
