"""``/docs`` and ``/redoc`` render in a real browser with nothing loaded from elsewhere.

Headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it) loads each page from a
live gateway with ``--dump-dom`` and records its network activity in a NetLog. Every name
other than 127.0.0.1 resolves to nothing, so the test never reaches the internet; a request
to a CDN would still show in the NetLog, and the test fails on it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.contract.conftest import COMMITTED
from tests.utils.deadlines import REQUEST_S
from tests.utils.processes import Process

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)"
)


def operation_ids() -> list[str]:
    spec: dict[str, Any] = json.loads(COMMITTED.read_text())
    return [op["operationId"] for item in spec["paths"].values() for op in item.values()]


def render(url: str, workdir: Path) -> subprocess.Popen[bytes]:
    """Start Chromium dumping the DOM of ``url`` once scripts ran (in virtual time)."""
    assert CHROMIUM is not None
    workdir.mkdir()
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={workdir / 'profile'}",
        f"--log-net-log={workdir / 'netlog.json'}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def page_requests(netlog: Path, origin: str) -> list[str]:
    """URLs the page asked for: the document itself and everything it initiated.

    Chromium's own background requests (``initiator`` "not an origin") are left out.
    """
    log: dict[str, Any] = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] != start_job or "url" not in params:
            continue
        if params.get("initiator") == origin or params.get("request_type") == "main frame":
            urls.append(params["url"])
    return urls


@pytest.fixture(scope="module")
def rendered(live_gateway: Process, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both pages rendered at once: {page: (dom, requests)}."""
    root = tmp_path_factory.mktemp("chromium")
    browsers = {
        page: render(f"{live_gateway.url}/{page}", root / page) for page in ("docs", "redoc")
    }
    result: dict[str, Any] = {}
    for page, browser in browsers.items():
        dom, _ = browser.communicate(timeout=90)
        assert browser.returncode == 0, f"chromium failed on /{page}"
        result[page] = (dom.decode(), page_requests(root / page / "netlog.json", live_gateway.url))
    return result


def test_pages_reference_only_local_urls(live_gateway: Process) -> None:
    for page in ("/docs", "/redoc"):
        response = httpx.get(live_gateway.url + page, timeout=REQUEST_S)
        assert response.status_code == 200
        assert "default-src 'self'" in response.headers["content-security-policy"]
        html = response.text
        assert "//" not in re.sub(r"<!--.*?-->", "", html, flags=re.S), html
        referenced = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)""", html)
        referenced += re.findall(r"""url:\s*'([^']+)'""", html)
        assert referenced and all(u.startswith("/") for u in referenced), referenced
        for url in referenced:
            asset = httpx.get(live_gateway.url + url, timeout=REQUEST_S)
            assert asset.status_code == 200 and asset.content, url


def test_swagger_ui_renders_every_operation(rendered: dict[str, Any]) -> None:
    dom, _ = rendered["docs"]
    opblock = r'<div class="opblock opblock-(\w+)[^"]*" id="operations-[\w-]+?-(\w+)"'
    blocks = re.findall(opblock, dom)
    shown = {operation_id for _, operation_id in blocks}
    assert set(operation_ids()) <= shown, set(operation_ids()) - shown
    paths = re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom)
    assert "/v1/images/remove-background" in paths
    assert ("post", "image_remove_background") in blocks


def test_redoc_renders_every_operation(rendered: dict[str, Any]) -> None:
    dom, _ = rendered["redoc"]
    shown = set(re.findall(r'data-section-id="operation/(\w+)"', dom))
    assert set(operation_ids()) <= shown, set(operation_ids()) - shown
    assert "/v1/images/remove-background" in dom


def test_no_request_leaves_the_gateway(live_gateway: Process, rendered: dict[str, Any]) -> None:
    gateway_origin = urlsplit(live_gateway.url).netloc
    for page, (_, requests) in rendered.items():
        assert f"{live_gateway.url}/openapi.json" in requests, (page, requests)
        elsewhere = [u for u in requests if urlsplit(u).netloc != gateway_origin]
        assert not elsewhere, (page, elsewhere)
