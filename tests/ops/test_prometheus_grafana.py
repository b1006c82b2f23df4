"""A real Prometheus scrapes the live stack under a short load; every Grafana panel's query,
evaluated through Prometheus's HTTP API, returns data.

The Prometheus configuration is the committed ``deploy/prometheus/prometheus.yml`` with its
targets pointed at the test processes and a 1 s scrape interval; the committed alert rules are
loaded with it and must evaluate cleanly.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.ops.conftest import DEPLOY, SANDBOX_KEY, Stack, tool
from tests.utils.deadlines import JOB_S, REQUEST_S, STARTUP_S
from tests.utils.media import png_b64
from tests.utils.net import free_port
from tests.utils.sandbox import CONTROL

pytestmark = [pytest.mark.e2e, pytest.mark.long]

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mediagate.json"
WINDOW = "1m"
"""What ``$__rate_interval`` (and Grafana's other interval macros) stand for here."""


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0


def _targets(config: dict[str, Any], stack: Stack) -> dict[str, Any]:
    """The committed config, scraping the test processes every second."""
    address = {
        "mediagate-api": stack.gateway.url,
        "mediagate-worker": stack.worker_metrics_url,
    }
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(DEPLOY / "prometheus" / name) for name in config["rule_files"]]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(address), f"scrape jobs changed: {jobs}"
    for job in config["scrape_configs"]:
        host = address[job["job_name"]].removeprefix("http://")
        job["static_configs"] = [{"targets": [host]}]
    return config


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[Prometheus]:
    binary = tool("prometheus")
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(_targets(config, stack)))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.1)
        yield Prometheus(url)
    finally:
        process.kill()  # its data is a temporary directory: no shutdown needed
        process.wait(timeout=10)
        log.close()


async def _wait_terminal(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + JOB_S
    while True:
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        assert asyncio.get_running_loop().time() < deadline, f"job still {job['status']}"
        await asyncio.sleep(0.05)


async def _load(stack: Stack) -> list[dict[str, Any]]:
    """Successes on a sync and an async provider, a fallback, a failure, client errors."""
    auth = {"Authorization": f"Bearer {SANDBOX_KEY}"}
    wait = {"Prefer": "wait=30"}
    async with (
        httpx.AsyncClient(base_url=stack.gateway.url, headers=auth, timeout=30) as client,
        httpx.AsyncClient(base_url=stack.sandbox.url, timeout=10) as sandbox,
    ):
        await sandbox.delete("/_sandbox/faults", headers=CONTROL)
        image = {"image": {"data": png_b64()}}
        jobs = []
        for _ in range(3):
            jobs.append(await client.post("/v1/images/remove-background", json=image, headers=wait))
        polled = [  # an asynchronous upstream: submitted, then polled
            await client.post(
                "/v1/images/remove-background", json={**image, "provider": "pixelapi"}
            )
            for _ in range(2)
        ]
        # let them finish first: an armed fault is served to the provider's next request,
        # which must be the submission meant to meet it, not one of their polls
        for response in polled:
            await _wait_terminal(client, response.json()["id"])
        await sandbox.post(
            "/_sandbox/faults",
            json={"provider": "imagepig", "fault": "http_500", "count": 1},
            headers=CONTROL,
        )
        jobs.append(await client.post("/v1/images/remove-background", json=image, headers=wait))
        await sandbox.post(
            "/_sandbox/faults", json={"provider": "pixelapi", "fault": "blocked"}, headers=CONTROL
        )
        jobs.append(
            await client.post(
                "/v1/images/generate",
                json={"prompt": "a lighthouse", "provider": "pixelapi", "fallback": False},
                headers=wait,
            )
        )
        assert (await client.get("/v1/jobs/job_that_does_not_exist")).status_code == 404
        assert (await client.post("/v1/images/remove-background", json={})).status_code in (
            400,
            422,
        )
        for response in jobs + polled:
            assert response.status_code in (200, 202), response.text
        finished = [await _wait_terminal(client, r.json()["id"]) for r in jobs + polled]
    return finished


def _panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _panels(item.get("panels", []))


def _substitute(expr: str, dashboard: dict[str, Any]) -> str:
    """What Grafana sends: interval macros and template variables ("All") filled in."""
    for macro in ("$__rate_interval", "$__interval", "$__range"):
        expr = expr.replace(macro, WINDOW)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            all_value = variable.get("allValue") or ".*"
            expr = re.sub(rf"\$\{{?{variable['name']}\}}?\b", all_value, expr)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


async def test_every_grafana_panel_query_returns_data(stack: Stack, prometheus: Prometheus) -> None:
    finished = await _load(stack)
    statuses = sorted(job["status"] for job in finished)
    assert statuses.count("failed") == 1 and statuses.count("succeeded") == 6, statuses
    fell_back = [j for j in finished if len(j["attempts"]) > 1 and j["status"] == "succeeded"]
    assert [a["provider"] for a in fell_back[0]["attempts"]] == ["imagepig", "pixelapi"]

    # Every finished job has been scraped (wherever it finished), then two scrapes more so
    # that every series has the two samples a rate needs.
    deadline = time.monotonic() + JOB_S
    while prometheus.value("sum(mediagate_jobs_total)") < len(finished):
        assert time.monotonic() < deadline, "prometheus never saw the jobs"
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.5)

    up = {r["metric"]["job"]: r["value"][1] for r in prometheus.query("up")}
    assert up == {"mediagate-api": "1", "mediagate-worker": "1"}, up

    dashboard = json.loads(DASHBOARD.read_text())
    empty, evaluated = [], 0
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            expr = _substitute(target["expr"], dashboard)
            evaluated += 1
            if not prometheus.query(expr):
                empty.append(f"{panel['title']!r}: {expr}")
    assert evaluated >= 20
    assert not empty, "panels without data:\n" + "\n".join(empty)

    # The provider variable lists every provider.
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "provider"]
    metric = re.search(r"label_values\((\w+),", variable["definition"])
    assert metric is not None
    listed = httpx.get(
        f"{prometheus.url}/api/v1/label/provider/values",
        params={"match[]": metric[1]},
        timeout=REQUEST_S,
    ).json()["data"]
    assert {"imagepig", "pixelapi", "everypixel", "perfectcorp", "imagepipeline"} <= set(listed)

    # The load shows up as it happened, not only as series.
    assert prometheus.value('sum(mediagate_jobs_total{status="failed"})') == 1
    assert prometheus.value("sum(mediagate_fallbacks_total)") == 1
    assert prometheus.value('sum(mediagate_http_requests_total{status="404"})') >= 1
    assert prometheus.value("sum(mediagate_credits_charged_total)") > 0
    assert prometheus.value('min(mediagate_redis_up{job="mediagate-worker"})') == 1

    # The committed alert rules are loaded and evaluate without error; none fires.
    groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=REQUEST_S).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 4
    assert all(rule["health"] == "ok" for rule in rules), [
        (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"
    ]
    firing = httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=REQUEST_S).json()["data"][
        "alerts"
    ]
    assert not [a for a in firing if a["state"] == "firing"], firing
