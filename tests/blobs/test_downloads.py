"""Signed blob URLs answered from either backend: whole, ranged, redirected, refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.api.blob_responses import RangeNotSatisfiable, parse_range
from app.blobs.base import BlobReader
from app.config import SANDBOX_TENANT_KEY
from app.domain.models import new_artifact_id
from app.gateway import Gateway
from app.store.files import BlobMeta
from tests.utils.in_process import SentBodies, in_process_gateway
from tests.utils.media import png_bytes
from tests.utils.seaweedfs import S3Server

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 1)),
        ("bytes=10-19", (10, 20)),
        ("bytes=990-5000", (990, 1000)),
        ("bytes=500-", (500, 1000)),
        ("bytes=-100", (900, 1000)),
        ("bytes=-5000", (0, 1000)),
        (" bytes = 1-2 ", (1, 3)),
        ("bytes=5-1", None),  # invalid: ignored, the whole blob
        ("bytes=0-1,5-6", None),  # several ranges: the whole blob
        ("items=0-1", None),
        ("bytes=a-b", None),
        ("bytes=-", None),
        ("bytes=\u00b2-", None),  # superscript two: a digit to str.isdigit, not to int
        ("bytes=-\u00b2", None),
        ("bytes=0-\u00b2", None),
        ("bytes=\u0661-\u0662", None),  # Arabic-Indic digits: not HTTP's DIGIT either
        ("bytes", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as raised:
        parse_range(header, SIZE)
    assert raised.value.status == 416
    assert raised.value.headers == {"Content-Range": "bytes */1000"}
    assert [e.pointer for e in raised.value.errors] == ["/headers/Range"]


async def upload(client: httpx.AsyncClient, gateway: Gateway, content: bytes) -> tuple[str, str]:
    """A file uploaded through the API: its id and its signed content URL (path and query)."""
    created = await client.post("/v1/files", files={"file": ("a.png", content, "image/png")})
    assert created.status_code == 201, created.text
    file_id = created.json()["id"]
    parts = urlsplit(gateway.signer.sign(f"/v1/files/{file_id}/content"))
    return file_id, f"{parts.path}?{parts.query}"


def s3_settings(server: S3Server, monkeypatch: pytest.MonkeyPatch, prefix: str) -> dict[str, Any]:
    for name, value in server.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    return {"blob_url": f"s3://mediagate-test/{prefix}", "s3_endpoint_url": server.endpoint_url}


@pytest.fixture(params=["local", "s3"])
def backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, Any]:
    if request.param == "local":
        return {}
    server: S3Server = request.getfixturevalue("s3_server")
    return s3_settings(server, monkeypatch, tmp_path.name)


async def test_whole_and_ranged_downloads(
    backend: dict[str, Any], redis_url: str, redis_client: object, tmp_path: Path
) -> None:
    png = png_bytes(40, 30)
    headers = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
    async with in_process_gateway(
        redis_url, tmp_path, headers=headers, sandbox=True, **backend
    ) as (gateway, client):
        file_id, url = await upload(client, gateway, png)
        whole = await client.get(url)
        assert whole.status_code == 200
        assert whole.content == png
        assert whole.headers["content-type"] == "image/png"
        assert whole.headers["content-length"] == str(len(png))

        part = await client.get(url, headers={"Range": "bytes=8-15"})
        assert part.status_code == 206
        assert part.content == png[8:16]
        assert part.headers["content-range"] == f"bytes 8-15/{len(png)}"

        tail = await client.get(url, headers={"Range": "bytes=-4"})
        assert (tail.status_code, tail.content) == (206, png[-4:])

        past = await client.get(url, headers={"Range": f"bytes={len(png)}-"})
        assert past.status_code == 416
        assert past.headers["content-type"] == "application/problem+json"
        assert past.json()["code"] == "range_not_satisfiable"
        assert past.json()["errors"][0]["pointer"] == "/headers/Range"
        assert past.headers["content-range"] == f"bytes */{len(png)}"

        ignored = await client.get(url, headers={"Range": "bytes=9-2"})
        assert (ignored.status_code, ignored.content) == (200, png)
        superscript = await client.get(url, headers=[(b"Range", b"bytes=\xb2-")])
        assert (superscript.status_code, superscript.content) == (200, png)

        forged = await client.get(url.replace("sig=", "sig=0"))
        assert forged.status_code == 404
        assert forged.json()["errors"][0]["pointer"] == "/path/file_id"
        for sig in ("\u00e9", "%FF"):  # not ASCII: refused as any wrong signature
            other = await client.get(re.sub(r"sig=[^&]*", f"sig={sig}", url))
            assert other.status_code == 404
            assert other.content == forged.content

        await gateway.blobs.delete(file_id)
        gone = await client.get(url)
        assert gone.status_code == 404
        assert gone.json()["code"] == "not_found"
        assert gone.json()["errors"][0]["pointer"] == "/path/file_id"


def count_reads(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the chunks read from the gateway's blob store from now on."""
    reads: list[int] = []
    opened = gateway.blobs.open

    async def counted(chunks: AsyncIterator[bytes | memoryview]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            reads.append(len(chunk))
            yield bytes(chunk)

    async def open_counted(
        blob_id: str, byte_range: tuple[int, int] | None = None
    ) -> BlobReader | None:
        reader = await opened(blob_id, byte_range)
        if reader is not None:
            reader.chunks = counted(reader.chunks)
        return reader

    monkeypatch.setattr(gateway.blobs, "open", open_counted)
    return reads


async def test_a_head_has_the_get_s_headers_and_reads_none_of_the_blob(
    backend: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    redis_client: object,
    tmp_path: Path,
) -> None:
    """An artifact (the fast lane's route) and an uploaded file (FastAPI's): the ``HEAD`` of
    the signed URL has the ``GET``'s status and headers, ``Content-Length`` the length of the
    ``GET``'s body, and neither reads the blob nor sends a body; refusals are the ``GET``'s."""
    png = png_bytes(300, 200)
    headers = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
    async with in_process_gateway(
        redis_url, tmp_path, headers=headers, sandbox=True, **backend
    ) as (gateway, client):
        _, file_url = await upload(client, gateway, png)
        meta = BlobMeta(
            id=new_artifact_id(), tenant="sandbox", content_type="image/png", size=len(png)
        )
        await gateway.blobs.put(meta.id, png, meta.content_type)
        await gateway.files.add_artifact(meta)
        parts = urlsplit(gateway.signer.sign(f"/v1/artifacts/{meta.id}"))
        artifact_url = f"{parts.path}?{parts.query}"
        reads = count_reads(gateway, monkeypatch)
        bodies = SentBodies(client)
        for url in (artifact_url, file_url):
            for ranged in ({}, {"Range": "bytes=8-15"}, {"Range": f"bytes={len(png)}-"}):
                get = await client.get(url, headers=ranged)
                assert get.status_code in (200, 206, 416)
                assert bool(reads) is (get.status_code != 416)  # the count works
                bodies.sent()
                reads.clear()
                head = await client.head(url, headers=ranged)
                assert (head.status_code, bodies.sent(), reads) == (get.status_code, b"", [])
                assert head.headers["content-length"] == str(len(get.content))
                del head.headers["x-request-id"], get.headers["x-request-id"]
                assert head.headers == get.headers
            forged = url.replace("sig=", "sig=0")
            refused = await client.get(forged)
            bodies.sent()
            head = await client.head(forged)
            assert (head.status_code, bodies.sent()) == (refused.status_code, b"")
            assert refused.status_code == 404
            assert head.headers["content-type"] == "application/problem+json"
            assert head.headers["content-length"] == str(len(refused.content))


async def test_s3_redirect_to_a_presigned_url(
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    redis_client: object,
    tmp_path: Path,
) -> None:
    png = png_bytes(50, 10)
    headers = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
    settings = s3_settings(s3_server, monkeypatch, "redirect")
    async with in_process_gateway(
        redis_url, tmp_path, headers=headers, sandbox=True, artifact_redirect=True, **settings
    ) as (gateway, client):
        _, url = await upload(client, gateway, png)
        answer = await client.get(url)
        assert answer.status_code == 307
        location = answer.headers["location"]
        assert location.startswith(f"{s3_server.endpoint_url}/mediagate-test/redirect/file_")
        assert "X-Amz-Signature=" in urlsplit(location).query
    async with httpx.AsyncClient(follow_redirects=True) as outside:
        whole = await outside.get(location)
        assert (whole.status_code, whole.content) == (200, png)
        part = await outside.get(location, headers={"Range": "bytes=0-7"})
        assert (part.status_code, part.content) == (206, png[:8])


async def test_object_store_down_is_a_503(
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    redis_client: object,
    tmp_path: Path,
    unused_tcp_port: int,
) -> None:
    """Uploads fail as a problem, not a crash; the store's absence is retryable."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    headers = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
    async with in_process_gateway(
        redis_url,
        tmp_path,
        headers=headers,
        sandbox=True,
        blob_url="s3://nowhere/x",
        s3_endpoint_url=f"http://127.0.0.1:{unused_tcp_port}",
    ) as (gateway, client):
        created = await client.post(
            "/v1/files", files={"file": ("a.png", png_bytes(), "image/png")}
        )
        assert created.status_code == 503, created.text
        assert created.json()["code"] == "store_unavailable"
