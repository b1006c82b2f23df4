"""Every 4xx problem points at what it is about (``app.api.problems``): ``errors[0].pointer``
names the path parameter of an unknown id, the ``Authorization`` header of a refused key, the
whole body (``""``) of a body that is not a JSON object, the path of no route and the method a
path does not take; codes, statuses and titles are as they were. On an in-process app over a
real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.exceptions import RequestValidationError
from redis.asyncio import Redis

from app.api.problems import _validation_error
from app.config import SANDBOX_TENANT_KEY
from app.domain.models import JobStatus
from app.gateway import Gateway
from app.store.jobs import Schedule
from tests.store.test_jobs import make_record
from tests.utils.in_process import in_process_gateway

ADMIN_TOKEN = "test-admin-token-problems-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
AUTH = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
JSON = {"Content-Type": "application/json"}
GENERATE = "/v1/images/generate"
JOB = "job_0123456789abcdef0123456789ab"
SIGNED = {"expires": 9_999_999_999, "sig": "0"}


@pytest.fixture
async def app(
    redis_url: str, redis_client: Redis, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    async with in_process_gateway(
        redis_url, tmp_path, sandbox=True, admin_token=ADMIN_TOKEN
    ) as built:
        yield built


def assert_points(
    response: httpx.Response, status: int, code: str, pointer: str, title: str
) -> dict[str, Any]:
    """A problem of ``status`` and ``code`` (its title and type as ever) whose first field
    error points at ``pointer``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"], body["title"]) == (status, code, title), body
    assert body["type"] == f"https://mediagate.dev/problems/{code}"
    assert body["errors"][0]["pointer"] == pointer, body
    return body


async def test_an_unknown_id_in_the_path_points_at_its_parameter(
    app: tuple[Gateway, httpx.AsyncClient],
) -> None:
    _, client = app
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("GET", f"/v1/jobs/{JOB}", {}, "/path/job_id"),  # the fast lane
        ("GET", "/v1/jobs/nope", {}, "/path/job_id"),  # the fast lane, not even a job id
        ("HEAD", f"/v1/jobs/{JOB}", {}, "/path/job_id"),
        ("POST", f"/v1/jobs/{JOB}/cancel", {}, "/path/job_id"),
        ("GET", f"/v1/jobs/{JOB}/deliveries", {}, "/path/job_id"),
        ("GET", f"/v1/jobs/{JOB}/events", {}, "/path/job_id"),
        ("GET", "/v1/batches/bat_nope", {}, "/path/batch_id"),
        ("GET", "/v1/batches/bat_nope/jobs", {}, "/path/batch_id"),
        ("POST", "/v1/batches/bat_nope/cancel", {}, "/path/batch_id"),
        ("GET", "/v1/artifacts/art_nope", {"params": SIGNED}, "/path/artifact_id"),  # lane
        ("GET", "/v1/files/file_nope/content", {"params": SIGNED}, "/path/file_id"),
        ("GET", "/admin/tenants/ten_nope", {"headers": ADMIN}, "/path/tenant_id"),
        (
            "PATCH",
            "/admin/tenants/ten_nope",
            {"headers": ADMIN, "json": {"status": "suspended"}},
            "/path/tenant_id",
        ),
        ("POST", "/admin/tenants/ten_nope/keys", {"headers": ADMIN}, "/path/tenant_id"),
        ("GET", "/admin/tenants/ten_nope/webhook-secret", {"headers": ADMIN}, "/path/tenant_id"),
        ("POST", "/admin/tenants/ten_nope/webhook-secret", {"headers": ADMIN}, "/path/tenant_id"),
        (
            "POST",
            "/admin/tenants/ten_nope/credits",
            {"headers": ADMIN, "json": {"amount": 5, "reason": "a grant"}},
            "/path/tenant_id",
        ),
        ("DELETE", "/admin/keys/key_nope", {"headers": ADMIN}, "/path/key_id"),
        ("GET", "/admin/upstreams/nope", {"headers": ADMIN}, "/path/provider"),
        ("POST", "/v1/providers/imagepipeline/callbacks/nope", {"json": {}}, "/path/token"),
    ]
    for method, url, kwargs, pointer in cases:
        kwargs = {**kwargs, "headers": kwargs.get("headers", AUTH)}
        if method == "HEAD":  # no body: the GET's problem, which the HEAD answers
            head = await client.head(url, **kwargs)
            assert (head.status_code, head.content) == (404, b"")
            continue
        response = await client.request(method, url, **kwargs)
        assert_points(response, 404, "not_found", pointer, "Not found")


async def test_a_refused_key_points_at_the_authorization_header(
    app: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gateway, client = app
    prompt = {"prompt": "a lighthouse"}
    refused = [
        ("GET", "/v1/account", {}),
        ("GET", "/v1/account", {"Authorization": "Bearer mg_live_unknown"}),
        ("GET", "/v1/account", {"Authorization": f"Basic {SANDBOX_TENANT_KEY}"}),
        ("GET", f"/v1/jobs/{JOB}", {"Authorization": "Bearer mg_live_unknown"}),  # the lane
        ("POST", GENERATE, {"Authorization": "Bearer mg_live_unknown"}),  # the lane
        ("GET", "/admin/tenants", {"Authorization": "Bearer not-the-admin-token"}),
        ("GET", "/admin/tenants", AUTH),
    ]
    for method, url, headers in refused:
        response = await client.request(method, url, json=prompt, headers=headers)
        body = assert_points(
            response, 401, "unauthenticated", "/headers/Authorization", "Unauthenticated"
        )
        assert body["errors"][0]["detail"] == body["detail"]

    tenant = await gateway.tenants.create("suspended")
    _, key = await gateway.tenants.add_key(tenant.id)
    await gateway.tenants.update(tenant.id, status="suspended")
    for method, url in (("GET", "/v1/account"), ("GET", f"/v1/jobs/{JOB}"), ("POST", GENERATE)):
        response = await client.request(
            method, url, json=prompt, headers={"Authorization": f"Bearer {key}"}
        )
        assert_points(response, 403, "forbidden", "/headers/Authorization", "Forbidden")


async def test_a_body_that_is_not_a_json_object_points_at_the_whole_body(
    app: tuple[Gateway, httpx.AsyncClient],
) -> None:
    _, client = app
    for url in (GENERATE, "/v1/batches"):  # the fast lane's route and a FastAPI one
        broken = await client.post(url, content=b'{"prompt": ', headers={**AUTH, **JSON})
        body = assert_points(broken, 400, "invalid_json", "", "Invalid json")
        # where the decoder stopped: the eleventh character, just past the colon and space
        assert (
            body["detail"] == "the request body is not valid JSON: Expecting value at character 11"
        )
        for content, headers in (
            (b"[]", JSON),
            (b'"a lighthouse"', JSON),
            (b"", JSON),
            (b"prompt=a lighthouse", {"Content-Type": "text/plain"}),
        ):
            response = await client.post(url, content=content, headers={**AUTH, **headers})
            assert_points(response, 422, "invalid_parameter", "", "Invalid parameter")
    multipart = {"Content-Type": "multipart/form-data; boundary=xyz"}
    unparsed = await client.post("/v1/files", content=b"not a form", headers={**AUTH, **multipart})
    assert_points(unparsed, 400, "invalid_parameter", "", "Invalid parameter")


async def test_no_route_points_at_the_path_and_a_wrong_method_at_the_method(
    app: tuple[Gateway, httpx.AsyncClient],
) -> None:
    _, client = app
    nothing = await client.get("/v1/nothing-here", headers=AUTH)
    assert_points(nothing, 404, "not_found", "/path", "Not found")
    wrong = await client.delete("/v1/jobs", headers=AUTH)
    assert_points(wrong, 405, "invalid_parameter", "/method", "Invalid parameter")
    assert wrong.headers["allow"] == "GET, HEAD"


async def test_cancelling_a_finished_job_points_at_the_job_in_the_path(
    app: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gateway, client = app
    store = gateway.jobs.store
    record = make_record("sandbox")
    await store.create(record, price=0, slot_limit=1000)
    (claimed,) = await store.claim(1, 30)
    claimed.record.job.status = JobStatus.succeeded
    await store.save(claimed, schedule=Schedule.release, lease=claimed.lease)
    response = await client.post(f"/v1/jobs/{record.job.id}/cancel", headers=AUTH)
    body = assert_points(response, 409, "conflict", "/path/job_id", "Conflict")
    assert body["detail"] == f"job {record.job.id} already succeeded"


async def test_a_debit_beyond_the_balance_points_at_the_amount(
    app: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gateway, client = app
    tenant = await gateway.tenants.create("poor")
    response = await client.post(
        f"/admin/tenants/{tenant.id}/credits",
        json={"amount": -10, "reason": "a debit"},
        headers=ADMIN,
    )
    body = assert_points(response, 402, "insufficient_credits", "/amount", "Insufficient credits")
    assert (body["required"], body["available"]) == (10, 0)


@pytest.mark.parametrize(
    ("loc", "pointer"),
    [
        (("body",), ""),
        (("body", "image", "data"), "/image/data"),
        (("body", "items", 3, "a/b~c"), "/items/3/a~1b~0c"),
        (("query", "cursor"), "/cursor"),
        (("path", "job_id"), "/path/job_id"),
        (("header", "cancel-after"), "/headers/Cancel-After"),
        (("header", "Idempotency-Key"), "/headers/Idempotency-Key"),
    ],
)
def test_validation_errors_point_by_the_conventions(loc: tuple[Any, ...], pointer: str) -> None:
    error = _validation_error(RequestValidationError([{"loc": loc, "msg": "bad", "type": "x"}]))
    assert (error.status, error.code.value) == (422, "invalid_parameter")
    assert [e.pointer for e in error.errors] == [pointer]
