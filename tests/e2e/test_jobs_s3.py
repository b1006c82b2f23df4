"""The job tests that store and serve bytes, again with the gateway's blobs in S3 (SeaweedFS).

The tests imported from ``test_jobs`` run here against a gateway started with
``MEDIAGATE_BLOB_URL=s3://…`` (this module's ``live_gateway``): uploads, inline inputs,
synchronous outputs and an asynchronous upstream's. The tests below check where the bytes went and
that downloads through the gateway honour ``Range``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.test_jobs import (
    test_prefer_wait_covers_an_asynchronous_upstream,
    test_remove_background_waits_and_serves_a_png,
    test_uploaded_file_feeds_a_job,
)
from tests.utils.deadlines import REQUEST_S
from tests.utils.media import png_b64
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway
from tests.utils.seaweedfs import S3Server, s3_client

pytestmark = pytest.mark.e2e

__all__ = [
    "test_prefer_wait_covers_an_asynchronous_upstream",
    "test_remove_background_waits_and_serves_a_png",
    "test_upload_and_output_live_in_the_bucket_and_ranges_are_served",
    "test_uploaded_file_feeds_a_job",
]

PREFIX = "e2e-jobs"


@pytest.fixture(scope="module")
def gateway_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-s3")


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, s3_server: S3Server, gateway_dir: Path) -> Iterator[Process]:
    url = with_db(redis_url, 13)
    redis.Redis.from_url(url).flushdb()
    with gateway(url, gateway_dir, **s3_server.env(prefix=PREFIX)) as proc:
        yield proc


async def test_upload_and_output_live_in_the_bucket_and_ranges_are_served(
    client: httpx.AsyncClient, s3_server: S3Server, gateway_dir: Path
) -> None:
    response = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64(64, 48)}},
        headers={"Prefer": "wait=30"},
    )
    assert response.status_code == 200, response.text
    job = response.json()
    (artifact,) = job["output"]["artifacts"]
    whole = await client.get(artifact["url"], headers={"Authorization": ""})
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    size = len(whole.content)
    assert whole.headers["content-length"] == str(size)

    # The bytes are in the bucket, under the configured prefix, and nowhere on local disk.
    bucket = s3_client(s3_server, prefix=PREFIX)
    assert await bucket.get(artifact["id"]) == whole.content
    input_id = job["input"]["image"]["file_id"]
    stored_input = await bucket.get(input_id)
    assert stored_input is not None and stored_input.startswith(b"\x89PNG")
    assert not (gateway_dir / "blobs").exists() or not any((gateway_dir / "blobs").rglob("*_*"))
    # Stored with its content type: a presigned URL of the object answers with it.
    async with httpx.AsyncClient(timeout=REQUEST_S) as outside:
        direct = await outside.get(await bucket.presign(artifact["id"], 60))
    assert direct.headers["content-type"] == artifact["content_type"] == "image/png"

    part = await client.get(artifact["url"], headers={"Authorization": "", "Range": "bytes=0-7"})
    assert part.status_code == 206
    assert part.content == whole.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert part.headers["content-range"] == f"bytes 0-7/{size}"
    tail = await client.get(artifact["url"], headers={"Authorization": "", "Range": "bytes=-12"})
    assert (tail.status_code, tail.content) == (206, whole.content[-12:])
    past = await client.get(
        artifact["url"], headers={"Authorization": "", "Range": f"bytes={size}-"}
    )
    assert past.status_code == 416
    assert past.json()["code"] == "range_not_satisfiable"
