"""Both blob backends behave alike: local disk, and S3 against a real SeaweedFS server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.blobs import BlobStore, BlobStoreError, LocalBlobStore, open_blob_store
from app.blobs.s3 import S3BlobStore
from app.config import Settings
from tests.utils.media import png_bytes
from tests.utils.seaweedfs import S3Server, s3_client


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    server: S3Server = request.getfixturevalue("s3_server")
    return s3_client(server, prefix=f"t{uuid.uuid4().hex[:12]}")


async def read(store: BlobStore, blob_id: str, byte_range: tuple[int, int] | None = None) -> bytes:
    reader = await store.open(blob_id, byte_range)
    assert reader is not None
    return b"".join([bytes(chunk) async for chunk in reader.chunks])


async def test_put_get_open_delete(store: BlobStore) -> None:
    data = os.urandom(70_000)
    await store.put("art_abc123", data)
    assert await store.get("art_abc123") == data
    assert await read(store, "art_abc123") == data
    reader = await store.open("art_abc123", (100, 200))
    assert reader is not None
    assert (reader.start, reader.end, reader.size) == (100, 200, len(data))
    assert b"".join([bytes(c) async for c in reader.chunks]) == data[100:200]
    await store.delete("art_abc123")
    assert await store.get("art_abc123") is None
    assert await store.open("art_abc123") is None
    await store.delete("art_abc123")  # deleting what is gone is not an error


async def test_missing_blob_is_none(store: BlobStore) -> None:
    assert await store.get("file_nothere") is None
    assert await store.open("file_nothere", (0, 10)) is None


async def test_a_put_replaces_the_whole_blob(store: BlobStore) -> None:
    await store.put("art_twice", b"a" * 5000)
    await store.put("art_twice", b"b" * 10)
    assert await store.get("art_twice") == b"b" * 10


async def test_streamed_put_larger_than_one_part(store: BlobStore) -> None:
    """An async iterable goes up as it comes (S3: a multipart upload past 8 MiB)."""
    parts = [os.urandom(1024 * 1024) for _ in range(9)]

    async def produce() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    await store.put("art_big", produce(), "video/mp4")
    whole = b"".join(parts)
    assert await read(store, "art_big") == whole
    assert await read(store, "art_big", (len(whole) - 5, len(whole))) == whole[-5:]


async def test_ids_that_are_not_ours_are_refused(store: BlobStore) -> None:
    for bad in ("../etc/passwd", "a/b", "", "x y"):
        with pytest.raises(ValueError):
            await store.put(bad, b"x")


async def test_s3_presigned_url_serves_bytes_type_and_ranges(s3_server: S3Server) -> None:
    store = s3_client(s3_server, prefix="presign")
    png = png_bytes(30, 20)
    await store.put("art_signed", png)
    url = await store.presign("art_signed", 60)
    async with httpx.AsyncClient() as client:
        whole = await client.get(url)
        assert whole.status_code == 200
        assert whole.content == png
        assert whole.headers["content-type"] == "image/png"  # sniffed at put
        part = await client.get(url, headers={"Range": "bytes=1-3"})
        assert part.status_code == 206
        assert part.content == png[1:4]
        assert part.headers["content-range"] == f"bytes 1-3/{len(png)}"
        tampered = await client.get(url.replace("art_signed", "art_other"))
        assert tampered.status_code == 403


async def test_s3_presign_endpoint_is_the_one_clients_reach(s3_server: S3Server) -> None:
    public = s3_server.endpoint_url.replace("127.0.0.1", "localhost")
    store = S3BlobStore(
        "s3://mediagate-test/pub",
        endpoint_url=s3_server.endpoint_url,
        presign_endpoint_url=public,
        credentials=(s3_server.access_key_id, s3_server.secret_access_key),
    )
    await store.put("art_pub", b"hello")
    url = await store.presign("art_pub", 60)
    assert url.startswith(f"{public}/mediagate-test/pub/art_pub?")
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).content == b"hello"


async def test_s3_wrong_credentials_raise_a_store_error(s3_server: S3Server) -> None:
    store = S3BlobStore(
        "s3://mediagate-test/x",
        endpoint_url=s3_server.endpoint_url,
        credentials=(s3_server.access_key_id, "not-the-secret"),
    )
    with pytest.raises(BlobStoreError):
        await store.put("art_denied", b"x")
    with pytest.raises(BlobStoreError):
        await store.get("art_denied")


async def test_s3_unreachable_raises_a_store_error(unused_tcp_port: int) -> None:
    store = S3BlobStore(
        "s3://mediagate-test/x",
        endpoint_url=f"http://127.0.0.1:{unused_tcp_port}",
        credentials=("a", "b"),
    )
    with pytest.raises(BlobStoreError):
        await store.open("art_nowhere")


def test_blob_url_picks_the_backend(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    default = open_blob_store(settings.blob_url, settings.data_dir)
    assert isinstance(default, LocalBlobStore)
    assert default.root == (tmp_path / "blobs").resolve()
    given = open_blob_store(f"file://{tmp_path}/elsewhere", tmp_path)
    assert isinstance(given, LocalBlobStore) and given.root == (tmp_path / "elsewhere").resolve()
    s3 = open_blob_store("s3://bucket/some/prefix", tmp_path, s3_endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    with pytest.raises(ValueError, match="unsupported scheme"):
        open_blob_store("gs://bucket", tmp_path)
