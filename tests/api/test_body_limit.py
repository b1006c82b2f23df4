"""The body limit on an in-process app over a real Redis: refused bodies are not read (or read
no further than the limit), an unknown key is refused before its body is read, a face swap's
two inline images at the media limit fit."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.api.body_limit import SMALL_BODY_BYTES, body_rules, inline_limit
from app.config import SANDBOX_TENANT_KEY
from tests.utils.in_process import in_process_gateway

MEDIA_LIMIT = 1024 * 1024
"""A small media limit keeps these bodies small; the rules scale with it."""
CHUNK = 64 * 1024


class Pulled:
    """A streamed request body that counts how much of it the server asked for."""

    def __init__(self, total: int, chunk: bytes = b"x" * CHUNK) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            piece = self.chunk[: self.total - self.sent]
            self.sent += len(piece)
            yield piece


@pytest.fixture
async def client(redis_url: str, redis_client: Redis, tmp_path: Path) -> AsyncIterator[Any]:
    async with in_process_gateway(
        redis_url,
        tmp_path,
        sandbox=True,
        max_media_bytes=MEDIA_LIMIT,
        headers={"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"},
    ) as (_, c):
        yield c


def assert_problem(
    response: httpx.Response, status: int, code: str, pointer: str | None = None
) -> dict[str, Any]:
    """The problem, pointing at ``pointer`` when given (``""``: the body as a whole)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    if pointer is not None:
        assert body["errors"][0]["pointer"] == pointer, body
    return body


def test_limits_follow_the_media_limit() -> None:
    rules = body_rules(10 * 1024 * 1024)
    swap = rules.find("POST", "/v1/images/swap-face")
    upscale = rules.find("POST", "/v1/images/upscale")
    generate = rules.find("POST", "/v1/images/generate")
    two_images = 2 * len(base64.b64encode(b"\0" * 10 * 1024 * 1024))
    assert two_images < swap.limit < two_images * 1.1 + SMALL_BODY_BYTES
    assert upscale.limit == inline_limit(1, 10 * 1024 * 1024) < swap.limit
    assert generate.limit == SMALL_BODY_BYTES
    upload = rules.find("POST", "/v1/files")
    assert upload.max_parts is not None and upload.limit < 11 * 1024 * 1024
    assert rules.find("PATCH", "/admin/tenants/t1").limit == SMALL_BODY_BYTES


async def test_a_declared_length_over_the_limit_is_refused_unread(client: Any) -> None:
    body = Pulled(10 * 1024 * 1024)
    response = await client.post(
        "/v1/images/upscale",
        content=body,
        headers={"Content-Length": str(body.total), "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large", "")
    assert body.sent <= CHUNK  # the transport's first read at most; the app read nothing


async def test_a_chunked_body_is_cut_at_the_limit(client: Any) -> None:
    limit = inline_limit(1, MEDIA_LIMIT)
    body = Pulled(50 * 1024 * 1024)
    response = await client.post(
        "/v1/images/upscale", content=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large", "")
    assert body.sent <= limit + 2 * CHUNK


async def test_an_unknown_key_is_refused_before_the_body_is_read(client: Any) -> None:
    for headers in ({"Authorization": "Bearer mg_live_nope"}, {"Authorization": ""}):
        body = Pulled(5 * 1024 * 1024)
        response = await client.post(
            "/v1/images/upscale",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert_problem(response, 401, "unauthenticated", "/headers/Authorization")
        assert body.sent <= CHUNK


async def test_a_face_swap_with_two_images_at_the_media_limit_fits(client: Any) -> None:
    """Both images at the limit pass the body limit (and get the media check's answer); a
    body far beyond it does not."""
    at_limit = base64.b64encode(b"\x89PNG" + b"\0" * (MEDIA_LIMIT - 4)).decode()
    body: dict[str, object] = {
        "source": {"data": at_limit},
        "target": {"data": "data:image/png;base64," + at_limit},
    }
    response = await client.post("/v1/images/swap-face", json=body)
    assert_problem(response, 422, "invalid_media")  # read whole, then judged as media
    body["extra"] = "x" * (MEDIA_LIMIT // 2)
    response = await client.post("/v1/images/swap-face", json=body)
    assert_problem(response, 413, "payload_too_large", "")


async def test_an_upload_with_a_huge_extra_part_is_refused(client: Any) -> None:
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    extra = (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="extra"; filename="e"\r\n\r\n'
    ).encode()

    class Upload(Pulled):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield head + b"\x89PNG"
            yield extra
            async for chunk in super().__aiter__():
                yield chunk

    upload = Upload(200 * 1024 * 1024)
    response = await client.post(
        "/v1/files",
        content=upload,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_problem(response, 413, "payload_too_large", "")
    assert upload.sent <= MEDIA_LIMIT + 2 * 64 * 1024 + 2 * CHUNK


async def test_an_upload_with_too_many_parts_is_refused(client: Any) -> None:
    files = [("file", ("a.png", b"\x89PNG", "image/png"))]
    files += [(f"field{i}", (f"f{i}", b"x", "text/plain")) for i in range(10)]
    response = await client.post("/v1/files", files=files)
    body = assert_problem(response, 413, "payload_too_large", "")
    assert "parts" in body["detail"]


async def test_small_bodies_elsewhere_are_capped_too(client: Any) -> None:
    response = await client.post(
        "/v1/jobs/job_0123456789abcdef0123456789ab/cancel", content=b"x" * (SMALL_BODY_BYTES + 1)
    )
    assert_problem(response, 413, "payload_too_large", "")
