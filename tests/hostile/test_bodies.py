"""Huge bodies: refused while read (or before), memory back near its baseline afterwards."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.hostile.conftest import TENANT, Hostile, assert_problem, blast, repeated
from tests.utils.deadlines import REQUEST_S

pytestmark = pytest.mark.e2e

MB = 2**20
HUGE = 300 * MB
REFUSALS = 20
RSS_SLACK_MB = 64


def _json_stream(total: int) -> Iterator[bytes]:
    """A JSON body that would be ``total`` bytes: an image whose base64 never ends."""
    yield b'{"image": {"data": "'
    yield from repeated(b"A" * (256 * 1024), total)


def _multipart_stream(total: int) -> Iterator[bytes]:
    """An upload with a real file part, then an extra part of ``total`` bytes."""
    yield (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG\r\n"
        b'--xyz\r\nContent-Disposition: form-data; name="extra"; filename="b.bin"\r\n\r\n'
    )
    yield from repeated(b"\0" * (256 * 1024), total)


MULTIPART = {"Content-Type": "multipart/form-data; boundary=xyz"}
JSON = {"Content-Type": "application/json"}
BAD_KEY = {"Authorization": "Bearer mg_live_not_a_key"}

PROBES = [
    # (path, headers, body, declared length?, status, code)
    ("/v1/images/upscale", {**JSON, **BAD_KEY}, _json_stream, False, 401, "unauthenticated"),
    ("/v1/images/upscale", {**JSON, **TENANT}, _json_stream, False, 413, "payload_too_large"),
    ("/v1/images/swap-face", {**JSON, **TENANT}, _json_stream, True, 413, "payload_too_large"),
    ("/v1/files", {**MULTIPART, **TENANT}, _multipart_stream, False, 413, "payload_too_large"),
    ("/v1/files", {**MULTIPART, **BAD_KEY}, _multipart_stream, True, 413, "payload_too_large"),
]


def _problem(headers: dict[str, str], body: bytes, code: str) -> None:
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == code


async def test_refused_huge_bodies_leave_memory_near_its_baseline(
    hostile: Hostile, tenant: httpx.AsyncClient
) -> None:
    for _ in range(3):  # warm: the first requests load code and fill caches
        await tenant.get("/v1/account")
        await blast(hostile.url, PROBES[1][0], PROBES[1][1], _json_stream(HUGE), length=None)
    baseline = hostile.rss_mb()
    for i in range(REFUSALS):
        path, headers, body, declared, status, code = PROBES[i % len(PROBES)]
        answer = await blast(
            hostile.url, path, headers, body(HUGE), length=HUGE if declared else None
        )
        assert answer.status == status, (path, answer.status, answer.body[:300])
        _problem(answer.headers, answer.body, code)
        assert answer.sent < 64 * MB, (path, answer.sent)  # refused long before the end
    after = hostile.rss_mb()
    assert after <= baseline + RSS_SLACK_MB, (baseline, after)
    assert (await tenant.get("/v1/account")).status_code == 200


async def test_an_ordinary_client_sending_a_huge_body_gets_the_413(hostile: Hostile) -> None:
    """httpx writes the whole body before it reads the answer: the server discards the rest
    without keeping it, and the client still reads a clean 413."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in repeated(b"A" * (256 * 1024), 64 * MB):
            yield chunk

    async with httpx.AsyncClient(base_url=hostile.url, timeout=REQUEST_S) as client:
        response = await client.post(
            "/v1/images/upscale",
            content=body(),
            headers={**JSON, **TENANT, "Content-Length": str(64 * MB)},
        )
    assert_problem(response, 413, "payload_too_large")
