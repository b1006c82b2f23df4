"""What a gateway writes to its log: no credential ever, and structured request lines.

A gateway runs at debug level while the test creates a tenant and an ``mg_live_…`` key, runs
jobs with it and with the sandbox key (one failing upstream through a sandbox fault),
downloads an artifact and is refused a few times; then its whole output is searched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.logs import REDACTED, redact
from app.sandbox import credentials as sandbox
from tests.contract.conftest import SANDBOX_KEY
from tests.utils.media import png_b64
from tests.utils.net import free_port, wait_until_up, with_db
from tests.utils.processes import ADMIN_TOKEN, SIGNING_KEY, gateway_env
from tests.utils.sandbox import CONTROL

REDIS_DB = 11
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    log: str
    secrets: dict[str, str]
    """What must never be logged, by name."""
    requests: int = 0
    job_ids: list[str] = field(default_factory=list)


def provider_credentials() -> dict[str, str]:
    found = {
        "imagepig": sandbox.IMAGEPIG_API_KEY,
        "pixelapi": sandbox.PIXELAPI_API_KEY,
        "imagepipeline": sandbox.IMAGEPIPELINE_API_KEY,
        "perfectcorp client id": sandbox.PERFECTCORP_CLIENT_ID,
        "perfectcorp secret": sandbox.PERFECTCORP_CLIENT_SECRET,
    }
    for n, (client_id, secret) in enumerate(sandbox.EVERYPIXEL_KEY_PAIRS):
        found[f"everypixel id {n}"] = client_id
        found[f"everypixel secret {n}"] = secret
    return found


def exercise(client: httpx.Client, run: Run) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        run.requests += 1
        return client.request(method, path, **kwargs)

    tenant = call("POST", "/admin/tenants", json={"name": "logs"}, headers=admin).json()
    created = call("POST", f"/admin/tenants/{tenant['id']}/keys", headers=admin).json()
    live_key = created["key"]
    assert live_key.startswith("mg_live_")
    run.secrets["created API key"] = live_key
    grant = {"amount": 10_000, "reason": "logs test"}
    call("POST", f"/admin/tenants/{tenant['id']}/credits", json=grant, headers=admin)
    live = {"Authorization": f"Bearer {live_key}"}
    sandbox_key = {"Authorization": f"Bearer {SANDBOX_KEY}"}

    body = {"image": {"data": png_b64(32, 32)}}
    wait = {"Prefer": "wait=30"}
    done = call("POST", "/v1/images/remove-background", json=body, headers=live | wait).json()
    assert done["status"] == "succeeded", done
    run.job_ids.append(done["id"])
    artifact_url = done["output"]["artifacts"][0]["url"]
    run.secrets["artifact signature"] = artifact_url.rsplit("sig=", 1)[1]
    assert call("GET", artifact_url).status_code == 200

    fault = {"provider": "imagepig", "fault": "http_500", "count": None}
    assert call("POST", "/_sandbox/faults", json=fault, headers=CONTROL).status_code == 204
    pinned = body | {"provider": "imagepig", "fallback": False}
    failed = call(
        "POST", "/v1/images/remove-background", json=pinned, headers=sandbox_key | wait
    ).json()
    assert failed["status"] == "failed", failed
    run.job_ids.append(failed["id"])
    call("DELETE", "/_sandbox/faults", headers=CONTROL)

    call("GET", f"/v1/jobs/{done['id']}", headers=live)
    call("GET", "/v1/jobs", headers=sandbox_key)
    call("GET", "/v1/account", headers=live)
    assert call("GET", "/v1/account", headers={"Authorization": "Bearer mg_live_0"}).is_error
    assert call("GET", "/admin/tenants", headers={"Authorization": "Bearer wrong"}).is_error
    assert call("POST", "/v1/images/upscale", json={"image": {}}, headers=live).is_error


@pytest.fixture(scope="module")
def run(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    url = with_db(redis_url, REDIS_DB)
    with redis.Redis.from_url(url) as r:
        r.flushdb()
    data_dir: Path = tmp_path_factory.mktemp("logs-gateway")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = data_dir / "gateway.log"
    secrets = {
        "admin token": ADMIN_TOKEN,
        "sandbox API key": SANDBOX_KEY,
        "signing key": SIGNING_KEY,
        **provider_credentials(),
    }
    result = Run(log="", secrets=secrets)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "--log-level", "debug", "serve", "--port", str(port)],
            env=gateway_env(url, data_dir, base, MEDIAGATE_SANDBOX_JOB_S="0.05"),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        try:
            wait_until_up(f"{base}/healthz")
            with httpx.Client(base_url=base, timeout=60) as client:
                exercise(client, result)
        finally:
            server.terminate()
            server.wait(timeout=15)
    result.log = log_path.read_text()
    yield result


def test_no_credential_or_key_is_ever_logged(run: Run) -> None:
    assert run.log.strip(), "the gateway wrote nothing at debug level"
    leaked = [name for name, value in run.secrets.items() if value in run.log]
    assert not leaked, leaked


def test_redact_masks_what_looks_like_a_credential() -> None:
    line = (
        "key mg_live_0a1b2c sent 'Authorization: Bearer t0k3n' for "
        "/v1/artifacts/art_1?expires=9&sig=abc123 with api_key=k1 and client_secret: 's3'"
    )
    masked = redact(line)
    for secret in ("0a1b2c", "t0k3n", "abc123", "k1", "s3"):
        assert secret not in masked, masked
    assert masked.count(REDACTED) == 5
    assert redact("job_1 used 3 tokens; sig of x") == "job_1 used 3 tokens; sig of x"


def json_lines(log: str) -> tuple[list[dict[str, Any]], list[str]]:
    parsed, other = [], []
    for line in log.splitlines():
        if not line.strip():
            continue
        try:
            parsed.append(json.loads(line))
        except ValueError:
            other.append(line)
    return parsed, other


def test_every_line_is_a_json_object(run: Run) -> None:
    parsed, other = json_lines(run.log)
    assert parsed and not other, other[:5]


def test_every_request_has_a_structured_line(run: Run) -> None:
    parsed, _ = json_lines(run.log)
    lines = [line for line in parsed if "request_id" in line]
    assert len(lines) >= run.requests, f"{len(lines)} request lines for {run.requests} requests"
    assert len({line["request_id"] for line in lines}) == len(lines)
    for line in lines:
        assert isinstance(line.get("latency_ms"), int | float), line
    for job_id in run.job_ids:
        (created, *_) = [line for line in lines if line.get("job_id") == job_id]
        assert created.get("tenant_id"), created
        assert created.get("operation") == "image.remove_background", created
        assert created.get("provider") == "imagepig", created
