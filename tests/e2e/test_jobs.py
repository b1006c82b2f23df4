"""One gateway process in sandbox mode, driven over real HTTP like a client would."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.utils.deadlines import JOB_S, REQUEST_S
from tests.utils.media import decode_image, png_b64
from tests.utils.sandbox import CONTROL

pytestmark = pytest.mark.e2e


async def stats(client: httpx.AsyncClient, provider: str) -> dict[str, Any]:
    body: dict[str, dict[str, Any]] = (await client.get("/_sandbox/stats", headers=CONTROL)).json()
    return body.get(provider, {"requests": 0, "submissions": 0})


async def wait_terminal(
    client: httpx.AsyncClient, job_id: str, timeout_s: float = JOB_S
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        assert asyncio.get_running_loop().time() < deadline, f"job still {job['status']}"
        await asyncio.sleep(0.1)


async def test_remove_background_waits_and_serves_a_png(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64(48, 40)}},
        headers={"Prefer": "wait=30"},
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded"
    assert job["provider"] == "imagepig"
    assert job["input"]["image"]["file_id"].startswith("file_")
    assert "data" not in job["input"]["image"]
    (artifact,) = job["output"]["artifacts"]
    assert artifact["content_type"] == "image/png"
    download = await client.get(artifact["url"], headers={"Authorization": ""})
    assert download.status_code == 200
    image = decode_image(download.content)
    assert image.format == "PNG" and image.size == (48, 40)
    assert (artifact["width"], artifact["height"]) == (48, 40)


async def _head_then_get(base: httpx.URL, head: str, get: str, auth: str) -> list[bytes]:
    """``HEAD head`` then ``GET get`` (the last request) on one connection, each sent once
    the previous answer's headers are in: every byte the server sent, split where each
    answer's headers end. Bytes a ``HEAD`` wrongly carried would come before the second
    status line."""
    reader, writer = await asyncio.open_connection(base.host, base.port)
    try:
        parts = []
        for method, target, last in (("HEAD", head, ""), ("GET", get, "Connection: close\r\n")):
            request = f"{method} {target} HTTP/1.1\r\nHost: {base.host}\r\n{auth}{last}\r\n"
            writer.write(request.encode())
            await writer.drain()
            parts.append(await reader.readuntil(b"\r\n\r\n"))
        parts.append(await reader.read())  # the GET's body, until the server closes
        return parts
    finally:
        writer.close()


def _content_length(head: bytes) -> int:
    for line in head.decode("latin-1").lower().split("\r\n"):
        name, _, value = line.partition(":")
        if name == "content-length":
            return int(value)
    raise AssertionError(f"no content-length in {head!r}")


async def test_head_over_the_wire_is_headers_only(client: httpx.AsyncClient) -> None:
    """Through the real server: the ``HEAD`` of a job and of its artifact carry the
    ``GET``'s ``Content-Length``, and not one byte of body follows them."""
    response = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64(24, 20)}},
        headers={"Prefer": "wait=30"},
    )
    assert response.status_code == 200, response.text
    job = response.json()
    url = job["output"]["artifacts"][0]["url"]
    artifact = httpx.URL(url)
    auth = f"Authorization: {client.headers['authorization']}\r\n"
    targets = (
        (f"/v1/jobs/{job['id']}", len((await client.get(f"/v1/jobs/{job['id']}")).content)),
        (f"{artifact.path}?{artifact.query.decode()}", len((await client.get(url)).content)),
    )
    for target, length in targets:
        async with asyncio.timeout(REQUEST_S):
            head, get, rest = await _head_then_get(client.base_url, target, "/healthz", auth)
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert _content_length(head) == length > 0
        assert get.startswith(b"HTTP/1.1 200 "), get  # nothing came between the two
        assert len(rest) == _content_length(get) and b'"status":"ok"' in rest


async def test_async_provider_is_polled_to_completion(client: httpx.AsyncClient) -> None:
    before = await stats(client, "pixelapi")
    response = await client.post(
        "/v1/images/upscale",
        json={"image": {"data": png_b64(20, 16)}, "scale": 4, "provider": "pixelapi"},
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    job = await wait_terminal(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["attempts"][0]["provider_job_id"]
    (artifact,) = job["output"]["artifacts"]
    image = decode_image((await client.get(artifact["url"])).content)
    assert image.size == (80, 64)
    after = await stats(client, "pixelapi")
    assert after["submissions"] - before["submissions"] == 1


async def test_prefer_wait_covers_an_asynchronous_upstream(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64()}, "provider": "pixelapi"},
        headers={"Prefer": "wait=20"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert response.headers["preference-applied"] == "wait=20"


async def test_events_stream_until_terminal(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64()}, "provider": "pixelapi"},
    )
    job_id = created.json()["id"]
    statuses = []
    async with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                statuses.append(line.removeprefix("event: "))
    assert statuses[-1] == "succeeded"
    assert len(statuses) >= 2


async def test_uploaded_file_feeds_a_job(client: httpx.AsyncClient) -> None:
    from tests.utils.media import png_bytes

    upload = await client.post(
        "/v1/files", files={"file": ("a.png", png_bytes(30, 30), "image/png")}
    )
    assert upload.status_code == 201, upload.text
    file_id = upload.json()["id"]
    response = await client.post(
        "/v1/images/upscale",
        json={"image": {"file_id": file_id}, "scale": 2},
        headers={"Prefer": "wait=30"},
    )
    assert response.status_code == 200, response.text
    (artifact,) = response.json()["output"]["artifacts"]
    assert (artifact["width"], artifact["height"]) == (60, 60)


async def test_no_face_fails_the_job_without_retrying(client: httpx.AsyncClient) -> None:
    before = await stats(client, "imagepig")
    response = await client.post(
        "/v1/images/swap-face",
        json={"source": {"data": png_b64()}, "target": {"data": png_b64(color=(9, 9, 9))}},
        headers={"Prefer": "wait=30"},
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "no_face_detected"
    assert job["error"]["retryable"] is False
    assert len(job["attempts"]) == 1
    after = await stats(client, "imagepig")
    assert after["requests"] - before["requests"] == 1


async def test_cancel_a_running_job(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/images/generate", json={"prompt": "a pig", "provider": "pixelapi"}
    )
    job_id = created.json()["id"]
    canceled = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    await asyncio.sleep(1.0)  # the worker's next write must not resurrect it
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "canceled"
    again = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 200


async def test_listing_filters_and_pages(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.post(
            "/v1/images/remove-background",
            json={"image": {"data": png_b64()}},
            headers={"Prefer": "wait=30"},
        )
    page = (await client.get("/v1/jobs", params={"limit": 2, "status": "succeeded"})).json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    assert all(j["status"] == "succeeded" for j in page["data"])
    more = (await client.get("/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert not {j["id"] for j in more["data"]} & {j["id"] for j in page["data"]}


async def test_upstream_500_falls_back_to_the_next_provider(client: httpx.AsyncClient) -> None:
    await client.post(
        "/_sandbox/faults",
        json={"provider": "imagepig", "fault": "http_500", "count": 1},
        headers=CONTROL,
    )
    response = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64()}},
        headers={"Prefer": "wait=30"},
    )
    job = response.json()
    assert job["status"] == "succeeded", job
    assert [a["provider"] for a in job["attempts"]] == ["imagepig", "pixelapi"]
    assert job["attempts"][0]["error"]["code"] == "provider_unavailable"


async def test_metrics_count_requests_by_route_template_and_jobs(client: httpx.AsyncClient) -> None:
    done = await client.post(
        "/v1/images/remove-background",
        json={"image": {"data": png_b64()}},
        headers={"Prefer": "wait=30"},
    )
    await client.get(f"/v1/jobs/{done.json()['id']}")
    text = (await client.get("/metrics")).text
    assert (
        'mediagate_http_requests_total{method="POST",route="/v1/images/remove-background",'
        'status="200"}'
    ) in text
    assert (
        'mediagate_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="200"}' in text
    )
    assert done.json()["id"] not in text  # labels stay bounded: no ids
    assert (
        'mediagate_jobs_total{operation="image.remove_background",provider="imagepig",'
        'status="succeeded"}'
    ) in text
    assert (
        'mediagate_upstream_requests_total{endpoint="submit",outcome="ok",provider="imagepig"}'
        in text
    )
