"""Tenants, credits, limits and idempotency through two gateway processes on one Redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.utils.clients import load_limits
from tests.utils.deadlines import JOB_S, LOAD_S, REQUEST_S
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import ADMIN_TOKEN, Process, gateway
from tests.utils.sandbox import CONTROL

pytestmark = [pytest.mark.e2e, pytest.mark.long]

IMAGE = png_b64()
HAMMER_PAUSE_S = 0.05
"""A rate-limit hammer's pause between its answer and its next request."""


@pytest.fixture(scope="module")
def two_gateways(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Process]]:
    url = with_db(redis_url, 3)
    redis.Redis.from_url(url).flushdb()
    data_dir: Path = tmp_path_factory.mktemp("pair")
    with gateway(url, data_dir) as first:
        # One upstream for both, as in production: the second calls the first's sandbox.
        with gateway(url, data_dir, MEDIAGATE_SANDBOX_URL=first.url) as second:
            yield [first, second]


@dataclass
class TenantClient:
    id: str
    key_id: str
    clients: list[httpx.AsyncClient]

    def via(self, i: int) -> httpx.AsyncClient:
        return self.clients[i % len(self.clients)]


class Admin:
    """The admin API, and the tenants it made for one test (their clients closed after)."""

    def __init__(self, client: httpx.AsyncClient, gateways: list[Process]) -> None:
        self.client = client
        self.gateways = gateways
        self.opened: list[httpx.AsyncClient] = []

    async def tenant(self, credits: int, **limits: int | bool) -> TenantClient:
        made = await new_tenant(self.client, self.gateways, credits, **limits)
        self.opened += made.clients
        return made

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.patch(path, **kwargs)

    async def delete(self, path: str) -> httpx.Response:
        return await self.client.delete(path)


@pytest.fixture
async def admin(two_gateways: list[Process]) -> AsyncIterator[Admin]:
    async with httpx.AsyncClient(
        base_url=two_gateways[0].url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=REQUEST_S,
    ) as client:
        manager = Admin(client, two_gateways)
        yield manager
        for opened in manager.opened:
            await opened.aclose()


async def new_tenant(
    admin: httpx.AsyncClient, gateways: list[Process], credits: int, **limits: int | bool
) -> TenantClient:
    tenant = (await admin.post("/admin/tenants", json={"name": "t", **limits})).json()
    key = (await admin.post(f"/admin/tenants/{tenant['id']}/keys")).json()
    if credits:
        granted = await admin.post(
            f"/admin/tenants/{tenant['id']}/credits", json={"amount": credits, "reason": "test"}
        )
        assert granted.status_code == 200, granted.text
    limits_ = load_limits(200)
    clients = [
        httpx.AsyncClient(
            base_url=g.url,
            headers={"Authorization": f"Bearer {key['key']}"},
            timeout=httpx.Timeout(REQUEST_S, pool=None),
            limits=limits_,
        )
        for g in gateways
    ]
    return TenantClient(tenant["id"], key["id"], clients)


async def settle(tenant: TenantClient, timeout_s: float = JOB_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        account: dict[str, Any] = (await tenant.via(0).get("/v1/account")).json()
        if account["reserved"] == 0:
            return account
        assert time.monotonic() < deadline, account
        await asyncio.sleep(0.2)


async def ledger(tenant: TenantClient) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = (await tenant.via(1).get("/v1/usage", params=params)).json()
        entries += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries


async def all_answers(
    requests: Iterable[Coroutine[Any, Any, httpx.Response]],
) -> list[httpx.Response]:
    """The answers to ``requests``, sent at once. A request that fails cancels the others
    before its error is raised, so that none runs on past the test: ``asyncio.gather`` leaves
    them running while the fixture closes their clients, and the sockets they still open
    fail a later test with their ``ResourceWarning``."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(request) for request in requests]
    return [task.result() for task in tasks]


async def test_credits_are_exact_under_500_concurrent_submissions(admin: Admin) -> None:
    tenant = await admin.tenant(100, rate_limit_rpm=100_000, max_concurrent_jobs=1000)
    body = {"image": {"data": IMAGE}, "provider": "imagepig"}
    responses = await all_answers(
        tenant.via(i).post("/v1/images/remove-background", json=body) for i in range(500)
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: 100, 402: 400}, statuses
    short = next(r.json() for r in responses if r.status_code == 402)
    assert short["code"] == "insufficient_credits" and short["required"] == 1

    account = await settle(tenant)
    assert (account["balance"], account["available"]) == (0, 0)
    entries = await ledger(tenant)
    by_kind = Counter[str]()
    for e in entries:
        by_kind[e["kind"]] += e["amount"]
    assert by_kind["grant"] - by_kind["charge"] == account["balance"]
    assert by_kind["charge"] == 100 and by_kind["reserve"] == 100


async def test_failed_blocked_and_canceled_jobs_are_refunded(admin: Admin) -> None:
    # Accepted work waived: the cancel below may land before or after the upstream accepts
    # the task, and is refunded either way (charging accepted work: tests/e2e/test_paid_work.py).
    tenant = await admin.tenant(50, charge_accepted_work=False)
    client = tenant.via(0)
    no_face = await client.post(
        "/v1/images/swap-face",
        json={"source": {"data": IMAGE}, "target": {"data": png_b64(color=(1, 1, 1))}},
        headers={"Prefer": "wait=30"},
    )
    assert no_face.json()["error"]["code"] == "no_face_detected"

    await client.post(
        "/_sandbox/faults", json={"provider": "pixelapi", "fault": "blocked"}, headers=CONTROL
    )
    blocked = await client.post(
        "/v1/images/generate",
        json={"prompt": "x", "provider": "pixelapi", "fallback": False},
        headers={"Prefer": "wait=30"},
    )
    assert blocked.json()["error"]["code"] == "content_blocked", blocked.json()["attempts"]

    running = await client.post("/v1/images/generate", json={"prompt": "x", "provider": "pixelapi"})
    canceled = await client.post(f"/v1/jobs/{running.json()['id']}/cancel")
    assert canceled.json()["status"] == "canceled"

    account = await settle(tenant)
    assert (account["balance"], account["reserved"]) == (50, 0)
    kinds = Counter(e["kind"] for e in await ledger(tenant))
    assert kinds["release"] == 3 and kinds["charge"] == 0


async def test_one_idempotency_key_makes_one_job_and_one_charge(admin: Admin) -> None:
    tenant = await admin.tenant(10)
    body = {"image": {"data": IMAGE}, "provider": "imagepig"}
    headers = {"Idempotency-Key": "order-42"}
    responses = await all_answers(
        tenant.via(i).post("/v1/images/remove-background", json=body, headers=headers)
        for i in range(50)
    )
    created = [
        r for r in responses if r.status_code == 202 and "idempotent-replayed" not in r.headers
    ]
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    in_flight = [r for r in responses if r.status_code == 409]
    assert len(created) == 1
    assert len(created) + len(replayed) + len(in_flight) == 50
    job_id = created[0].json()["id"]
    assert all(r.json()["id"] == job_id for r in replayed)
    assert all(r.json()["code"] == "idempotency_key_in_flight" for r in in_flight)

    again = await tenant.via(1).post("/v1/images/remove-background", json=body, headers=headers)
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == job_id
    other = await tenant.via(0).post(
        "/v1/images/remove-background", json={**body, "metadata": {"a": 1}}, headers=headers
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"

    await settle(tenant)
    jobs = (await tenant.via(0).get("/v1/jobs")).json()["data"]
    assert [j["id"] for j in jobs] == [job_id]
    kinds = Counter(e["kind"] for e in await ledger(tenant))
    assert kinds["reserve"] == 1 and kinds["charge"] == 1


async def test_another_tenants_ids_answer_404_like_unknown_ones(admin: Admin) -> None:
    owner = await admin.tenant(10)
    intruder = await admin.tenant(10)
    done = await owner.via(0).post(
        "/v1/images/remove-background",
        json={"image": {"data": IMAGE}},
        headers={"Prefer": "wait=30"},
    )
    job = done.json()
    file_id = job["input"]["image"]["file_id"]
    spy = intruder.via(1)
    probes = [
        await spy.get(f"/v1/jobs/{job['id']}"),
        await spy.post(f"/v1/jobs/{job['id']}/cancel"),
        await spy.get(f"/v1/jobs/{job['id']}/events"),
        await spy.post("/v1/images/upscale", json={"image": {"file_id": file_id}}),
    ]
    unknown = await spy.get("/v1/jobs/job_000000000000aaaaaaaaaaaaaaaa")
    for probe in probes:
        assert probe.status_code == 404, probe.text
        assert (
            owner.id not in probe.text
            and job["id"] not in probe.text.replace(probe.json()["instance"], "")
            or probe.json()["code"] == "not_found"
        )
    assert probes[0].json()["detail"].replace(job["id"], "X") == unknown.json()["detail"].replace(
        "job_000000000000aaaaaaaaaaaaaaaa", "X"
    )
    listing = (await spy.get("/v1/jobs")).json()
    assert listing["data"] == []
    usage = (await spy.get("/v1/usage")).json()
    assert all(e["job_id"] != job["id"] for e in usage["data"])


async def test_revoked_key_and_suspended_tenant_are_refused_at_once_everywhere(
    admin: Admin,
) -> None:
    tenant = await admin.tenant(10)
    for client in tenant.clients:  # warm both processes' key caches
        assert (await client.get("/v1/account")).status_code == 200
    await admin.patch(f"/admin/tenants/{tenant.id}", json={"status": "suspended"})
    for client in tenant.clients:
        assert (await client.get("/v1/account")).status_code == 403
    await admin.patch(f"/admin/tenants/{tenant.id}", json={"status": "active"})
    assert (await tenant.via(1).get("/v1/account")).status_code == 200
    assert (await admin.delete(f"/admin/keys/{tenant.key_id}")).status_code == 204
    for client in tenant.clients:
        response = await client.get("/v1/account")
        assert response.status_code == 401 and response.json()["code"] == "unauthenticated"


async def test_rate_limit_holds_across_two_processes(admin: Admin) -> None:
    rpm, seconds = 120, 10.0
    burst, per_s = rpm // 6, rpm / 60
    tenant = await admin.tenant(0, rate_limit_rpm=rpm)
    accepted = 0
    refused: list[httpx.Response] = []
    sent: list[float] = []
    answered: list[float] = []
    stop = time.monotonic() + seconds
    give_up = time.monotonic() + LOAD_S

    async def hammer(i: int) -> None:
        """At least ``seconds`` of requests, and on until some were refused (a busy machine
        sends more slowly, so it sends for longer). Each hammer waits ``HAMMER_PAUSE_S``
        after an answer: eight of them still ask some 80 times a second more often than the
        limit allows, so a request meets each allowance within milliseconds of its time (the
        limit's schedule does not shift with a late request), without spending the machine's
        CPU on thousands of requests more."""
        nonlocal accepted
        while (time.monotonic() < stop or len(refused) < 10) and time.monotonic() < give_up:
            sent.append(time.monotonic())
            response = await tenant.via(i).get("/v1/account")
            answered.append(time.monotonic())
            if response.status_code == 200:
                accepted += 1
            else:
                refused.append(response)
            await asyncio.sleep(HAMMER_PAUSE_S)

    await asyncio.gather(*(hammer(i) for i in range(8)))
    assert refused, "the limit was never reached"
    # The burst, then the rate, whichever process answered: never more than the span in which
    # the decisions were made allows, and none of what it allows lost (the hammers never
    # pause for the ten seconds it takes the bucket to fill).
    assert accepted <= burst + per_s * (max(answered) - min(sent)) + 1, accepted
    assert accepted >= burst + per_s * (max(sent) - min(answered)) - 1, accepted
    sample = refused[0]
    assert sample.status_code == 429 and sample.json()["code"] == "rate_limited"
    assert int(sample.headers["retry-after"]) >= 1
    assert f"q={rpm}" in sample.headers["ratelimit-policy"]
    assert sample.headers["ratelimit"].startswith('"requests";r=')


async def test_admin_api_needs_the_admin_token(two_gateways: list[Process]) -> None:
    async with httpx.AsyncClient(base_url=two_gateways[1].url, timeout=REQUEST_S) as anonymous:
        for headers in ({}, {"Authorization": "Bearer mg_test_sandbox"}):
            response = await anonymous.get("/admin/tenants", headers=headers)
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"


def test_cli_wraps_the_admin_api(two_gateways: list[Process]) -> None:
    def cli(*args: str) -> dict[str, Any]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.cli",
                "admin",
                "--url",
                two_gateways[0].url,
                "--token",
                ADMIN_TOKEN,
                *args,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        parsed: dict[str, Any] = json.loads(out)
        return parsed

    tenant = cli("create-tenant", "acme", "--rpm", "120")
    assert tenant["name"] == "acme" and tenant["rate_limit_rpm"] == 120
    key = cli("create-key", tenant["id"])
    assert key["key"].startswith("mg_live_")
    assert cli("grant", tenant["id"], "25", "--reason", "welcome")["available"] == 25
    account = httpx.get(
        f"{two_gateways[1].url}/v1/account",
        headers={"Authorization": f"Bearer {key['key']}"},
        timeout=REQUEST_S,
    ).json()
    assert account["balance"] == 25 and account["limits"]["rate_limit_rpm"] == 120
