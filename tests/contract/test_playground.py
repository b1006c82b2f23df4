"""``/playground`` driven in headless Chromium: sign in with a key, run a synchronous and an
asynchronous operation through the form, and see each result on the page.

Chromium is Debian's (``.ci/run`` installs it), driven by Playwright's Python client through
its own executable path: no browser is downloaded. Every name but 127.0.0.1 resolves to
nothing. On failure, a screenshot of the page is left in the test's temporary directory and
its path is in the assertion message.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, FilePayload, Page, expect, sync_playwright

from app.api.playground import CONTENT_SECURITY_POLICY
from tests.contract.conftest import SANDBOX_KEY
from tests.utils.deadlines import REQUEST_S
from tests.utils.media import png_bytes
from tests.utils.processes import Process

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)"
)

BROWSER_TIMEOUT_MS = 60_000
"""How long the page may take for any one step (a whole job included), however busy the machine."""
expect.set_options(timeout=BROWSER_TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_gateway: Process, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(base_url=live_gateway.url)
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/playground")
    page.fill("#api-key", SANDBOX_KEY)
    page.click("#sign-in button")
    expect(page.locator("#workbench")).to_be_visible()
    try:
        yield page
    except BaseException:
        shot = tmp_path / "playground.png"
        page.screenshot(path=str(shot), full_page=True)
        raise
    finally:
        context.close()
    assert not errors, errors


def run(page: Page, operation: str, provider: str, shot: Path) -> None:
    """Choose an operation and provider, upload a PNG, run, and wait for the job's end."""
    page.select_option("#operation", operation)
    page.select_option("#provider", provider)
    square: FilePayload = {
        "name": "square.png",
        "mimeType": "image/png",
        "buffer": png_bytes(64, 64),
    }
    page.set_input_files("input[name=image-file]", files=[square])
    page.click("#run")
    status = page.locator("#status")
    expect(status).to_have_attribute("data-status", "succeeded")
    page.screenshot(path=str(shot), full_page=True)


def test_page_is_served_with_its_own_assets_only(live_gateway: Process) -> None:
    response = httpx.get(live_gateway.url + "/playground", timeout=REQUEST_S)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    referenced = re.findall(r"""(?:src|href)=["']([^"']+)""", response.text)
    assert referenced and all(url.startswith("/") for url in referenced), referenced
    for url in referenced:
        served = httpx.get(live_gateway.url + url, timeout=REQUEST_S)
        assert served.status_code == 200 and served.content, url


@needs_chromium
def test_synchronous_operation_shows_the_image(page: Page, tmp_path: Path) -> None:
    run(page, "image.remove_background", "imagepig", tmp_path / "sync.png")
    image = page.locator("#result img[data-artifact]")
    expect(image).to_have_count(1)
    loaded = image.evaluate("img => img.complete && img.naturalWidth > 0")
    assert loaded, f"artifact not displayed; see {tmp_path / 'sync.png'}"
    curl = page.locator("#curl").inner_text()
    assert "/v1/images/remove-background" in curl and '"provider":"imagepig"' in curl
    assert SANDBOX_KEY not in curl  # the command names the key, never shows it
    events = page.locator("#events li").all_inner_texts()
    assert events[-1].endswith("succeeded")


@needs_chromium
def test_asynchronous_operation_shows_live_status_and_keywords(page: Page, tmp_path: Path) -> None:
    run(page, "image.keywords", "everypixel", tmp_path / "async.png")
    keywords = page.locator("#result ul[data-output] li")
    assert keywords.count() > 0, f"no keywords shown; see {tmp_path / 'async.png'}"
    statuses = [line.split()[-1] for line in page.locator("#events li").all_inner_texts()]
    assert statuses[-1] == "succeeded"
    assert len(statuses) >= 2  # the accepted job, then its end from the event stream


@needs_chromium
def test_a_refused_request_shows_the_problem(page: Page) -> None:
    page.select_option("#operation", "image.remove_background")
    page.click("#run")  # no image given
    expect(page.locator("#status")).to_have_attribute("data-status", "refused")
    problem = page.locator("#problem")
    expect(problem).to_be_visible()
    assert "422" in problem.inner_text()


@needs_chromium
def test_a_wrong_key_is_told_and_opens_nothing(browser: Browser, live_gateway: Process) -> None:
    context = browser.new_context(base_url=live_gateway.url)
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    page = context.new_page()
    page.goto("/playground")
    page.fill("#api-key", "mg_wrong")
    page.click("#sign-in button")
    expect(page.locator("#account")).to_contain_text("unauthenticated")
    expect(page.locator("#workbench")).to_be_hidden()
    context.close()
