"""Bad input gets a clear problem+json answer, and costs nothing: nothing stored or sent."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis

from tests.utils.media import png_b64, png_bytes
from tests.utils.net import with_db
from tests.utils.sandbox import CONTROL

pytestmark = pytest.mark.e2e

KEY = "/headers/Authorization"
"""Where a refused API key is pointed at."""


@pytest.fixture
async def untouched(client: httpx.AsyncClient, redis_url: str) -> AsyncIterator[None]:
    """Asserts that the test stored no job or file and sent nothing upstream."""
    r = redis.Redis.from_url(with_db(redis_url, 1))

    def snapshot() -> tuple[int, int]:
        return len(r.keys("mg:job:*")), len(r.keys("mg:file:*"))

    before_keys = snapshot()
    before_stats = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    yield
    assert snapshot() == before_keys
    after_stats = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    assert after_stats == before_stats
    r.close()


def assert_problem(
    response: httpx.Response, status: int, code: str, pointer: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"] and body["instance"]
    if pointer is not None:
        assert pointer in [e["pointer"] for e in body["errors"]], body
    return body


@pytest.mark.usefixtures("untouched")
class TestRefusedBeforeAnythingHappens:
    async def test_malformed_json(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/images/remove-background",
            content=b'{"image": {"data": ',
            headers={"Content-Type": "application/json"},
        )
        assert_problem(response, 400, "invalid_json", "")  # the body as a whole

    async def test_wrong_type(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/images/generate", json={"prompt": 12, "seed": "x"})
        body = assert_problem(response, 422, "invalid_parameter", "/prompt")
        assert "/seed" in [e["pointer"] for e in body["errors"]]

    async def test_missing_field(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/images/remove-background", json={})
        assert_problem(response, 422, "invalid_parameter", "/image")

    async def test_unknown_field_is_refused_not_dropped(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/images/generate", json={"prompt": "p", "stepz": 3})
        assert_problem(response, 422, "invalid_parameter", "/stepz")

    async def test_two_media_sources(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/images/remove-background",
            json={"image": {"data": png_b64(), "url": "https://example.com/a.png"}},
        )
        assert_problem(response, 422, "invalid_parameter", "/image")

    async def test_bad_base64(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/images/remove-background", json={"image": {"data": "not*base64!"}}
        )
        assert_problem(response, 422, "invalid_base64", "/image/data")

    async def test_bytes_that_are_not_an_image(self, client: httpx.AsyncClient) -> None:
        data = base64.b64encode(b"hello, I am text, not a picture").decode()
        response = await client.post("/v1/images/remove-background", json={"image": {"data": data}})
        assert_problem(response, 422, "invalid_media", "/image/data")

    async def test_truncated_image(self, client: httpx.AsyncClient) -> None:
        data = base64.b64encode(png_bytes(64, 64)[:60]).decode()
        response = await client.post("/v1/images/remove-background", json={"image": {"data": data}})
        assert_problem(response, 422, "invalid_media", "/image/data")

    async def test_media_over_10_mb(self, client: httpx.AsyncClient) -> None:
        data = base64.b64encode(b"\x89PNG" + b"\0" * (10 * 1024 * 1024 + 10)).decode()
        response = await client.post("/v1/images/remove-background", json={"image": {"data": data}})
        assert_problem(response, 413, "media_too_large", "/image/data")

    async def test_upload_that_is_not_an_image(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/files", files={"file": ("a.png", b"GIF89a-nope", "image/png")}
        )
        assert_problem(response, 422, "invalid_media", "/file")

    async def test_unknown_file_id(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/images/remove-background", json={"image": {"file_id": "file_doesnotexist"}}
        )
        assert_problem(response, 404, "not_found", "/image/file_id")

    async def test_parameter_the_provider_cannot_honour(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/images/generate",
            json={"prompt": "a pig", "width": 640, "height": 480, "provider": "imagepig"},
        )
        body = assert_problem(response, 422, "unsupported_parameter", "/height")
        assert body["provider"] == "imagepig"

    async def test_scale_outside_a_providers_range(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/images/upscale",
            json={"image": {"data": png_b64()}, "scale": 8, "provider": "pixelapi"},
        )
        body = assert_problem(response, 422, "unsupported_parameter", "/scale")
        assert body["capable_providers"] == ["imagepig"]

    async def test_callback_url_inside_the_network(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/images/remove-background",
            json={"image": {"data": png_b64()}, "callback_url": "http://169.254.169.254/hook"},
        )
        assert_problem(response, 422, "unsafe_url", "/callback_url")

    async def test_media_url_with_another_scheme(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/images/remove-background", json={"image": {"url": "file:///etc/passwd"}}
        )
        assert_problem(response, 422, "unsafe_url", "/image/url")

    async def test_unknown_provider(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/images/remove-background",
            json={"image": {"data": png_b64()}, "provider": "nope"},
        )
        assert_problem(response, 422, "unsupported_operation", "/provider")

    async def test_unknown_job(self, client: httpx.AsyncClient) -> None:
        missing = await client.get("/v1/jobs/job_000000000000ffff")
        assert_problem(missing, 404, "not_found", "/path/job_id")
        canceled = await client.post("/v1/jobs/job_nope/cancel")
        assert_problem(canceled, 404, "not_found", "/path/job_id")

    async def test_artifact_with_a_bad_signature(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            "/v1/artifacts/art_x", params={"expires": 9999999999, "sig": "0"}
        )
        assert_problem(response, 404, "not_found", "/path/artifact_id")

    async def test_missing_and_wrong_keys(self, client: httpx.AsyncClient) -> None:
        body = {"image": {"data": png_b64()}}
        response = await client.post(
            "/v1/images/remove-background", json=body, headers={"Authorization": ""}
        )
        assert_problem(response, 401, "unauthenticated", KEY)
        response = await client.post(
            "/v1/images/remove-background", json=body, headers={"Authorization": "Bearer mg_live_x"}
        )
        assert_problem(response, 401, "unauthenticated", KEY)
        listing = await client.get("/v1/jobs", headers={"Authorization": ""})
        assert_problem(listing, 401, "unauthenticated", KEY)

    async def test_unknown_route(self, client: httpx.AsyncClient) -> None:
        assert_problem(await client.get("/v1/nothing-here"), 404, "not_found", "/path")
