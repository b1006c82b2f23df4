"""Faults on status polls never cost a second submission.

For every asynchronous binding family (PixelAPI, Everypixel's tasks, Perfect Corp,
ImagePipeline) and every kind of trouble reading a task (500, 502, 429 with and without
``Retry-After``, a timeout, a dropped connection, a status the document does not list), the
sandbox fails one to three polls of a running job: the job still succeeds, on its one attempt,
the sandbox counts exactly one submission for it, and the tenant is charged once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.deadlines import JOB_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway
from tests.utils.sandbox import CONTROL

pytestmark = [pytest.mark.e2e, pytest.mark.long]

UPSTREAM_TIMEOUT_S = "1.5"
"""The adapters' per-call timeout here: a poll held by the ``timeout`` fault ends this soon."""

FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
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
"""One asynchronous binding per provider: the route and a request it serves."""

KINDS: dict[str, tuple[str, int]] = {
    "500": ("http_500", 3),
    "502": ("http_502", 2),
    "429 with Retry-After": ("rate_limit", 1),
    "429 without Retry-After": ("http_429", 2),
    "timeout": ("timeout", 1),
    "reset": ("reset", 2),
    "unknown status": ("unknown_status", 3),
}
"""Kind of poll trouble → the sandbox fault that makes it, and how many polls it fails.
(``rate_limit`` is each provider's documented rate-limit answer: a 429 with ``Retry-After``
at PixelAPI and ImagePipeline, a bare 429 at Perfect, a 502 at Everypixel.)"""


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    data_dir: Path = tmp_path_factory.mktemp("poll-faults")
    timings = {
        f"MEDIAGATE_PROVIDERS__{name.upper()}__{setting}": value
        for name in FAMILIES
        for setting, value in (("POLL_INTERVAL_S", "0.1"), ("TIMEOUT_S", UPSTREAM_TIMEOUT_S))
    }
    # The circuit breakers are not under test: the faults here must not open them.
    timings["MEDIAGATE_CIRCUIT__MIN_REQUESTS"] = "100000"
    timings["MEDIAGATE_SANDBOX_POLLING_INTERVAL_MS"] = "100"  # Perfect's polling_interval
    with gateway(with_db(redis_url, 10), data_dir, **timings) as proc:
        yield proc


async def provider_stats(client: httpx.AsyncClient, provider: str) -> dict[str, Any]:
    stats: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return stats.get(provider, {"submissions": 0, "faults_served": 0})


async def charges_of(client: httpx.AsyncClient, job_id: str) -> list[int]:
    usage = (await client.get("/v1/usage", params={"job_id": job_id, "kind": "charge"})).json()
    return [entry["amount"] for entry in usage["data"]]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("provider", list(FAMILIES))
async def test_poll_trouble_never_resubmits(
    client: httpx.AsyncClient, provider: str, kind: str
) -> None:
    fault, count = KINDS[kind]
    route, body = FAMILIES[provider]
    aimed = {"provider": provider, "fault": fault, "count": count, "on": "poll"}
    armed = await client.post("/_sandbox/faults", json=aimed, headers=CONTROL)
    assert armed.status_code < 300, armed.text
    before = await provider_stats(client, provider)
    balance = (await client.get("/v1/account")).json()["balance"]

    created = await client.post(route, json={**body, "provider": provider, "fallback": False})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    job = (await wait_all_terminal(client, [job_id], JOB_S, every_s=0.2))[job_id]

    after = await provider_stats(client, provider)
    assert job["status"] == "succeeded", job
    assert len(job["attempts"]) == 1, job["attempts"]
    (attempt,) = job["attempts"]
    assert attempt["provider"] == provider and attempt["charge_reason"] == "delivered"
    assert after["faults_served"] - before["faults_served"] == count
    # an unknown status reads as running; every other fault is a poll that did not read it
    assert attempt["poll_errors"] == (0 if fault == "unknown_status" else count)
    assert after["submissions"] - before["submissions"] == 1
    price = job["credits"]["reserved"]
    assert job["credits"]["charged"] == price > 0
    assert await charges_of(client, job_id) == [price]
    assert (await client.get("/v1/account")).json()["balance"] == balance - price
