"""Inputs that used to answer 500, store what they should not, or were taken at face value:
each gets its 4xx problem with a stable code and a pointer, and nothing is stored."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest

from app.sandbox.av import mp4_bytes, wav_bytes
from tests.hostile.conftest import ADMIN, Hostile, assert_problem, finished, sandbox_stats
from tests.utils.deadlines import REQUEST_S
from tests.utils.media import png_b64

pytestmark = pytest.mark.e2e


async def _post_raw(client: httpx.AsyncClient, path: str, raw: str) -> httpx.Response:
    """A JSON body written by hand (what ``json.dumps`` would refuse or escape)."""
    return await client.post(path, content=raw, headers={"Content-Type": "application/json"})


async def test_prefer_wait_with_thousands_of_digits(tenant: httpx.AsyncClient) -> None:
    response = await tenant.post(
        "/v1/images/generate",
        json={"prompt": "a lighthouse"},
        headers={"Prefer": "wait=" + "9" * 5000},
    )
    assert response.status_code in (200, 202), response.text
    assert response.headers["preference-applied"] == "wait=60"
    await finished(tenant, response.headers["location"])


@pytest.mark.parametrize(
    ("metadata", "pointer"),
    [
        ('{"note": "\\ud800"}', "/metadata/note"),
        ('{"a": {"b": ["ok", "\\udfff tail"]}}', "/metadata/a/b/1"),
        ('{"\\ud83d": 1}', "/metadata"),
        ('{"x": Infinity}', "/metadata/x"),
        ('{"x": -Infinity}', "/metadata/x"),
        ('{"x": [1, NaN]}', "/metadata/x/1"),
        ('{"x": 1e999}', "/metadata/x"),
        ('{"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}', "/metadata/a/b/c/d/e"),
        (json.dumps({f"k{i}": i for i in range(65)}), "/metadata"),
        (json.dumps({"big": "x" * 17_000}), "/metadata"),
    ],
)
@pytest.mark.usefixtures("nothing_stored")
async def test_metadata_out_of_bounds(
    tenant: httpx.AsyncClient, metadata: str, pointer: str
) -> None:
    """Refused before the inline image is stored (no orphan file)."""
    image = json.dumps({"data": png_b64()})
    raw = f'{{"image": {image}, "metadata": {metadata}}}'
    response = await _post_raw(tenant, "/v1/images/upscale", raw)
    assert_problem(response, 422, "invalid_parameter", pointer)


@pytest.mark.usefixtures("nothing_stored")
async def test_a_lone_surrogate_in_a_prompt(tenant: httpx.AsyncClient) -> None:
    raw = '{"prompt": "a cat \\udc00", "metadata": {"ok": true}}'
    response = await _post_raw(tenant, "/v1/images/generate", raw)
    assert_problem(response, 422, "invalid_parameter", "/prompt")


async def test_metadata_within_bounds_comes_back_unchanged(tenant: httpx.AsyncClient) -> None:
    metadata = {"order": 42, "tags": ["a", "b"], "nested": {"x": 1.5, "y": None, "e": "é😀"}}
    response = await tenant.post(
        "/v1/images/generate", json={"prompt": "a lighthouse", "metadata": metadata}
    )
    assert response.status_code == 202, response.text
    job = await finished(tenant, response.headers["location"])
    assert job["metadata"] == metadata


async def test_list_cursors(tenant: httpx.AsyncClient) -> None:
    response = await tenant.get("/v1/usage", params={"cursor": "0-0"})
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}
    for cursor in ("99999999999999999999999-0", "garbage", "1-2-3", "١-٢", "1-1\n"):
        response = await tenant.get("/v1/usage", params={"cursor": cursor})
        assert_problem(response, 400, "invalid_parameter", "/cursor")
    for cursor in ("garbage", "job_", "job_zz", "0-0"):
        response = await tenant.get("/v1/jobs", params={"cursor": cursor})
        assert_problem(response, 422, "invalid_parameter", "/cursor")


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/",
        "http://[::1]:99999/a.png",
        "http://[::127.0.0.1]/a.png",
        "http://[64:ff9b::7f00:1]/a.png",
        "http://[64:ff9b:1:7f00:1::]/a.png",
        "http://[2002:7f00:1::]/a.png",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/a.png",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
    ],
)
async def test_media_urls_that_are_broken_or_reach_inside(
    tenant: httpx.AsyncClient, url: str
) -> None:
    response = await tenant.post("/v1/images/upscale", json={"image": {"url": url}})
    body = assert_problem(response, 422, "unsafe_url", "/image/url")
    assert "127.0.0.1" not in body["detail"] and "169.254" not in body["detail"]


async def test_admin_grants_beyond_any_balance(tenant: httpx.AsyncClient, hostile: Hostile) -> None:
    async with httpx.AsyncClient(base_url=hostile.url, headers=ADMIN, timeout=REQUEST_S) as admin:
        tenant_id = (await admin.post("/admin/tenants", json={"name": "rich"})).json()["id"]
        path = f"/admin/tenants/{tenant_id}/credits"
        for amount in (2**63, 2**63 + 1, -(2**63) - 1, 10**30):
            response = await admin.post(path, json={"amount": amount, "reason": "x"})
            assert_problem(response, 422, "invalid_parameter", "/amount")
        raw = '{"amount": ' + "9" * 5000 + ', "reason": "x"}'
        response = await admin.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
        grant = {"amount": 10**15, "reason": "most"}
        assert (await admin.post(path, json=grant)).status_code == 200
        response = await admin.post(path, json={"amount": 1, "reason": "one more"})
        assert_problem(response, 422, "invalid_parameter", "/amount")
        balance = (await admin.post(path, json={"amount": -1, "reason": "back"})).json()
        assert balance["balance"] == 10**15 - 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    ("path", "field", "content"),
    [
        ("/v1/analysis/video-keywords", "video", mp4_bytes(1.0, 32, 32) + b"junk"),
        ("/v1/analysis/video-keywords", "video", b"\0\0\0\x18ftypisom pretend frames"),
        ("/v1/audio/clone-voice", "reference_audio", wav_bytes(1.0) + b"\0" * 9),
        ("/v1/audio/clone-voice", "reference_audio", b"ID3" + b"\0" * 64),
    ],
)
async def test_audio_and_video_must_be_whole_files(
    tenant: httpx.AsyncClient, path: str, field: str, content: bytes
) -> None:
    body: dict[str, Any] = {field: {"data": _b64(content)}}
    if field == "reference_audio":
        body["text"] = "hi"
    response = await tenant.post(path, json=body)
    assert_problem(response, 422, "invalid_media", f"/{field}/data")


async def test_whole_audio_and_video_files_are_taken(tenant: httpx.AsyncClient) -> None:
    video = {"video": {"data": _b64(mp4_bytes(1.0, 32, 32))}}
    audio = {"text": "hi", "reference_audio": {"data": _b64(wav_bytes(1.0))}}
    for path, body in (("/v1/analysis/video-keywords", video), ("/v1/audio/clone-voice", audio)):
        response = await tenant.post(path, json=body)
        assert response.status_code == 202, response.text
        await finished(tenant, response.headers["location"])


async def test_sandbox_controls_need_the_admin_token(
    tenant: httpx.AsyncClient, hostile: Hostile
) -> None:
    fault = {"provider": "imagepig", "fault": "http_500", "count": 1}
    async with httpx.AsyncClient(base_url=hostile.url, timeout=REQUEST_S) as anyone:
        for headers in ({}, {"Authorization": "Bearer mg_test_sandbox"}, {"Authorization": "x"}):
            for method, path, body in (
                ("POST", "/_sandbox/faults", fault),
                ("DELETE", "/_sandbox/faults", None),
                ("GET", "/_sandbox/stats", None),
            ):
                response = await anyone.request(method, path, json=body, headers=headers)
                assert_problem(response, 401, "unauthenticated")
        assert (await anyone.get("/_sandbox/healthz")).status_code == 200
        # The emulated providers still check their own credentials, not the admin token.
        response = await anyone.post("/_sandbox/imagepig/xl", json={"prompt": "x"}, headers=ADMIN)
        assert response.status_code == 401, response.text
        assert "Api-Key" in response.text
    assert isinstance(await sandbox_stats(tenant), dict)  # the admin token opens them


async def test_a_lone_surrogate_on_an_admin_route(hostile: Hostile) -> None:
    async with httpx.AsyncClient(base_url=hostile.url, headers=ADMIN, timeout=REQUEST_S) as admin:
        response = await admin.post(
            "/admin/tenants",
            content='{"name": "acme \\ud800"}',
            headers={"Content-Type": "application/json"},
        )
    assert_problem(response, 422, "invalid_parameter")


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    "raw",
    [
        "[" * 60_000,
        '{"prompt": ' + "[" * 30_000 + "]" * 30_000 + "}",
        '{"prompt": "x", "metadata": ' + '{"a":' * 10_000 + "1" + "}" * 10_001,
        '{"prompt": 1' + "0" * 5000 + "}",
        '{"prompt": "x"',
        "\xff\xfe{}",
    ],
)
async def test_json_bombs_and_broken_json(tenant: httpx.AsyncClient, raw: str) -> None:
    response = await _post_raw(tenant, "/v1/images/generate", raw)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_idempotency_key_of_any_bytes(tenant: httpx.AsyncClient) -> None:
    for key in (b"\xff\xfe-k", b"\xe9t\xe9", b"k" * 300):
        response = await tenant.post(
            "/v1/images/generate",
            json={"prompt": "x"},
            # httpx takes a bytes value under a str name; its hints take one type for both
            headers={"Idempotency-Key": key},  # type: ignore[arg-type]
        )
        assert response.status_code in (202, 400), response.text
        if response.status_code == 202:
            await finished(tenant, response.headers["location"])


async def test_a_reconcile_window_before_the_epoch(hostile: Hostile) -> None:
    async with httpx.AsyncClient(base_url=hostile.url, headers=ADMIN, timeout=REQUEST_S) as admin:
        for since in ("0348-12-18T10:13:41Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z"):
            response = await admin.get("/admin/reconcile", params={"since": since})
            assert response.status_code == 200, (since, response.text)
        response = await admin.get(
            "/admin/reconcile",
            params={"since": "1960-01-01T00:00:00Z", "until": "1965-01-01T00:00:00Z"},
        )
        assert response.status_code == 200, response.text
        response = await admin.get(
            "/admin/reconcile",
            params={"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00"},
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/v1/artifacts/art_x", "/v1/files/file_x/content"])
async def test_a_signature_that_is_not_ascii(tenant: httpx.AsyncClient, path: str) -> None:
    for sig in ("\u00e9", "0" * 31 + "\u00e9"):
        response = await tenant.get(path, params={"expires": "99999999999", "sig": sig})
        assert_problem(response, 404, "not_found")


async def _raw(base_url: str, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """``request`` written as it is on a connection of its own: the status line, header
    fields (names lower-cased) and body of the answer, read until the server closes."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), REQUEST_S)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    fields = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
    return status, fields, body


GENERATE = b'{"prompt": "a lighthouse"}'
CHUNKED = b"1a\r\n" + GENERATE + b"\r\n0\r\n\r\n"
AUTH = b"Authorization: Bearer mg_test_sandbox\r\nHost: gateway\r\n"


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    "request_",
    [
        b"POST /v1/images/generate HTTP/1.1\r\n" + AUTH + b"Content-Type: application/json\r\n"
        b"X-Note: a\x01b\r\nContent-Length: 26\r\n\r\n" + GENERATE,
        b"POST /v1/images/generate HTTP/1.1\r\n" + AUTH + b"Content-Type: application/json\r\n"
        b"Content-Length: 26\r\nContent-Length: 27\r\n\r\n" + GENERATE,
        b"POST /v1/images/generate HTTP/1.1\r\n" + AUTH + b"Content-Type: application/json\r\n"
        b"Content-Length: twenty-six\r\n\r\n" + GENERATE,
        b"POST /v1/images/generate HTTP/1.1\r\n" + AUTH + b"Content-Type: application/json\r\n"
        b"Content-Length: 26\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED,
        b"POST /v1/images/generate HTTP/1.1\r\n" + AUTH + b"Content-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + GENERATE + b"\r\n0\r\n\r\n",
        b"GET /v1/jobs/job_\xff HTTP/1.1\r\n" + AUTH + b"\r\n",
        b"get /v1/account HTTP/1.1\r\n" + AUTH + b"\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    ],
    ids=["control-character", "two-lengths", "length-not-a-number", "length-and-chunked",
         "bad-chunk", "byte-in-path", "lowercase-method", "tls"],
)  # fmt: skip
async def test_a_request_that_is_not_http_is_answered_with_a_problem(
    hostile: Hostile, request_: bytes
) -> None:
    """The server's own 400 for bytes that are not an HTTP/1.1 request is a problem too, not
    uvicorn's plain text; the connection is closed after it."""
    status, fields, body = await _raw(hostile.url, request_)
    assert status.startswith("HTTP/1.1 400 "), (status, body)
    assert fields["content-type"] == "application/problem+json"
    assert fields["connection"] == "close"
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (400, "invalid_parameter")


async def test_a_head_too_large_is_answered_with_a_problem(hostile: Hostile) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    status, fields, body = await _raw(hostile.url, head)
    assert status.startswith("HTTP/1.1 431 "), (status, body)
    assert fields["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (431, "invalid_parameter")


async def test_a_websocket_upgrade_is_served_as_http(hostile: Hostile) -> None:
    """The gateway has no WebSocket: asking for one on a route gets that route's answer (an
    unknown job: 404 as a problem), not uvicorn's plain-text 403."""
    request_ = (
        b"GET /v1/jobs/job_0190f3a2c4e1a1b2c3d4e5f6a7b8c9d0/events HTTP/1.1\r\n" + AUTH
        + b"Connection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )  # fmt: skip
    status, fields, body = await _raw(hostile.url, request_)
    assert status.startswith("HTTP/1.1 404 "), (status, body)
    assert fields["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "not_found"
