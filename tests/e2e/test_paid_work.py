"""Paid work is paid for, and webhooks carry the job a client reads.

- A cancel storm: 100 jobs at the four asynchronous providers, each canceled at a random
  moment. Upstream submissions never exceed the jobs; every job whose task the upstream
  accepted is charged its price (the default policy) and says so on its attempt; every other
  job says why it was not charged; the balance moved by exactly the charges.
- A webhook receiver downloads every artifact from the URLs in the payload.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.utils.deadlines import JOB_S, LOAD_S, REQUEST_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import ADMIN_TOKEN, Process, gateway
from tests.utils.receivers import Receiver
from tests.utils.sandbox import CONTROL

pytestmark = [pytest.mark.e2e, pytest.mark.long]

JOBS = 100
ASYNC_PROVIDERS: dict[str, tuple[str, dict[str, Any]]] = {
    "pixelapi": ("/v1/images/remove-background", {"image": {"data": png_b64()}}),
    "everypixel": (
        "/v1/images/swap-face",
        {"source": {"data": png_b64(40, 40)}, "target": {"data": png_b64(48, 40)}},
    ),
    "perfectcorp": ("/v1/images/colorize", {"image": {"data": png_b64(64, 64)}}),
    "imagepipeline": (
        "/v1/images/swap-face",
        {"source": {"data": png_b64(40, 40)}, "target": {"data": png_b64(48, 40)}},
    ),
}


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    data_dir: Path = tmp_path_factory.mktemp("paid-work")
    env = {
        f"MEDIAGATE_PROVIDERS__{name.upper()}__POLL_INTERVAL_S": "0.1" for name in ASYNC_PROVIDERS
    }
    with gateway(
        with_db(redis_url, 11),
        data_dir,
        MEDIAGATE_URL_ALLOWLIST='["127.0.0.1/32"]',
        MEDIAGATE_SANDBOX_JOB_S="1.0",
        MEDIAGATE_SANDBOX_POLLING_INTERVAL_MS="100",
        MEDIAGATE_CIRCUIT__MIN_REQUESTS="100000",
        **env,
    ) as proc:
        yield proc


async def submissions(client: httpx.AsyncClient) -> int:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return sum(int(stats.get(p, {}).get("submissions", 0)) for p in ASYNC_PROVIDERS)


async def test_a_cancel_storm_charges_every_accepted_task_once(
    client: httpx.AsyncClient,
) -> None:
    rng = random.Random(13)
    submitted_before = await submissions(client)
    balance_before = (await client.get("/v1/account")).json()["balance"]
    providers = list(ASYNC_PROVIDERS)

    async def create_and_cancel(index: int) -> str:
        provider = providers[index % len(providers)]
        route, body = ASYNC_PROVIDERS[provider]
        created = await client.post(route, json={**body, "provider": provider, "fallback": False})
        assert created.status_code == 202, created.text
        job_id: str = created.json()["id"]
        await asyncio.sleep(rng.uniform(0, 1.5))
        canceled = await client.post(f"/v1/jobs/{job_id}/cancel")
        # 409: it finished first (then it was delivered and charged as any success)
        assert canceled.status_code in (200, 409), canceled.text
        return job_id

    ids = await asyncio.gather(*(create_and_cancel(i) for i in range(JOBS)))
    jobs = await wait_all_terminal(client, ids, LOAD_S)

    assert await submissions(client) - submitted_before <= JOBS
    charged_total = 0
    outcomes: dict[str, int] = {}
    for job in jobs.values():
        status = job["status"]
        credits = job["credits"]
        attempts = job["attempts"]
        accepted = bool(attempts) and attempts[-1]["provider_job_id"] is not None
        reason = attempts[-1]["charge_reason"] if attempts else "not_accepted"
        key = f"{status}/{reason}" + (f"/{job['error']['code']}" if job["error"] else "")
        outcomes[key] = outcomes.get(key, 0) + 1
        if status == "succeeded":
            assert reason == "delivered" and credits["charged"] == credits["reserved"], job
        elif accepted:
            assert status == "canceled", (job["error"], attempts)
            assert reason == "canceled_after_accept", job
            assert credits["charged"] == credits["reserved"] > 0, job
        elif status == "canceled":
            assert reason == "not_accepted", job
            assert credits["charged"] == 0, job
        else:  # refused by the upstream before any task (its own limits): never charged
            assert status == "failed" and reason == "not_accepted", job
            assert credits["charged"] == 0, job
        # no job had more than one task accepted upstream
        assert sum(a["provider_job_id"] is not None for a in attempts) <= 1, job
        usage = (
            await client.get("/v1/usage", params={"job_id": job["id"], "kind": "charge"})
        ).json()["data"]
        assert [e["amount"] for e in usage] == ([credits["charged"]] if credits["charged"] else [])
        charged_total += credits["charged"]
    account = (await client.get("/v1/account")).json()
    assert account["balance"] == balance_before - charged_total
    assert account["reserved"] == 0
    # the storm hit jobs both before and after their upstream accepted them
    assert outcomes.get("canceled/canceled_after_accept", 0) > 0, outcomes
    assert outcomes.get("canceled/not_accepted", 0) > 0, outcomes


async def test_a_webhook_receiver_downloads_every_artifact_from_the_payload(
    client: httpx.AsyncClient,
) -> None:
    receiver = Receiver(down_for=0)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        response = await client.post(
            "/v1/images/remove-background",
            json={
                "image": {"data": png_b64()},
                "provider": "pixelapi",
                "callback_url": f"http://127.0.0.1:{port}/hooks",
            },
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        await wait_all_terminal(client, [job_id], JOB_S)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + JOB_S
        while not receiver.requests:
            assert loop.time() < deadline, "no webhook arrived"
            await asyncio.sleep(0.05)
    finally:
        server.close()
        await server.wait_closed()

    secret = (
        await client.get(
            "/admin/tenants/sandbox/webhook-secret",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    ).json()["secret"]
    headers, body = receiver.requests[0]
    event = Webhook(secret).verify(body, headers)
    data = event["data"]
    read = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert data["id"] == job_id and data["status"] == "succeeded"
    artifacts = data["output"]["artifacts"]
    assert artifacts and len(artifacts) == len(read["output"]["artifacts"])
    # the same job as GET shows (URLs are signed when rendered, so they may differ in time)
    strip = {"url"}
    assert [{k: v for k, v in a.items() if k not in strip} for a in artifacts] == [
        {k: v for k, v in a.items() if k not in strip} for a in read["output"]["artifacts"]
    ]
    async with httpx.AsyncClient(
        timeout=REQUEST_S
    ) as anyone:  # no API key: the signed URL is enough
        for artifact in artifacts:
            assert artifact["url"].startswith("http"), artifact
            download = await anyone.get(artifact["url"])
            assert download.status_code == 200, download.text
            assert download.headers["content-type"] == artifact["content_type"]
            assert len(download.content) == artifact["bytes"]
