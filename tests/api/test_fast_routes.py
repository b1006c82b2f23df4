"""The fast lane (``app.api.fast_routes``) answers exactly as the FastAPI routes it stands in
front of: every request below is sent to the app with the lane and to the same app without it
(both on one Redis), and the answers are compared: status, headers, problem+json bodies byte
for byte, job answers field by field (ids and times aside). The lane must also really answer
the plain cases itself, and hand the others to FastAPI before it has written anything."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import fast_routes
from app.api.fast_routes import FastRoutes
from app.config import SANDBOX_TENANT_KEY
from app.domain.models import Artifact, Attempt, JobOutput, new_artifact_id
from app.gateway import Gateway
from app.store import keys
from app.store.files import BlobMeta
from tests.utils.in_process import in_process_gateway
from tests.utils.media import png_bytes

AUTH = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
GENERATE = "/v1/images/generate"
PROMPT = {"prompt": "a lighthouse at dusk", "provider": "imagepig"}
_ID = re.compile(r"(job|art|led|hold)_[0-9a-f]{8,}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)?")


class CountingLane(FastRoutes):
    """The lane, counting the requests it hands to FastAPI."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.handoffs = 0
        inner = self.app

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            self.handoffs += 1
            await inner(scope, receive, send)

        self.app = counted


@dataclass
class Pair:
    gateway: Gateway
    plain_gateway: Gateway
    lane: httpx.AsyncClient
    plain: httpx.AsyncClient
    counter: list[CountingLane]

    @property
    def handoffs(self) -> int:
        return self.counter[0].handoffs


@pytest.fixture
async def pair(redis_url: str, redis_client: Redis, tmp_path: Path) -> AsyncIterator[Pair]:
    counter: list[CountingLane] = []

    class Lane(CountingLane):
        def __init__(self, app: ASGIApp) -> None:
            super().__init__(app)
            counter.append(self)

    async with (
        in_process_gateway(redis_url, tmp_path / "a", sandbox=True) as (gateway, lane),
        in_process_gateway(redis_url, tmp_path / "b", sandbox=True) as (plain_gateway, plain),
    ):
        lane_app = lane._transport.app  # type: ignore[attr-defined]
        plain_app = plain._transport.app  # type: ignore[attr-defined]
        for middleware in lane_app.user_middleware:
            if middleware.cls is FastRoutes:
                middleware.cls = Lane
        plain_app.user_middleware = [
            m for m in plain_app.user_middleware if m.cls is not FastRoutes
        ]
        await lane.get("/healthz")  # builds the middleware stack
        assert len(counter) == 1
        counter[0].handoffs = 0
        yield Pair(gateway, plain_gateway, lane, plain, counter)


def _headers(response: httpx.Response) -> dict[str, str]:
    skip = {"x-request-id", "content-length", "date", "location"}
    return {k: v for k, v in response.headers.items() if k not in skip}


def _scrub(value: Any) -> Any:
    return json.loads(_TIME.sub("T", _ID.sub(r"\1_X", json.dumps(value))))


def same_answer(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    assert _headers(a) == _headers(b)
    if a.headers["content-type"] != "application/json":  # problems, bytes
        assert a.content == b.content
    else:
        first, second = _scrub(a.json()), _scrub(b.json())
        for timing in ("created_at", "updated_at", "expires_at"):
            first.pop(timing, None), second.pop(timing, None)
        assert first == second


async def both(pair: Pair, method: str, url: str, **kwargs: Any) -> httpx.Response:
    a = await pair.lane.request(method, url, **kwargs)
    b = await pair.plain.request(method, url, **kwargs)
    same_answer(a, b)
    return a


async def test_a_submission_is_answered_by_the_lane_as_by_fastapi(pair: Pair) -> None:
    answer = await both(pair, "POST", GENERATE, json=PROMPT, headers=AUTH)
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    assert answer.headers["location"] == f"/v1/jobs/{answer.json()['id']}"
    assert pair.handoffs == 0
    assert await pair.gateway.redis.zcard(keys.tenant_jobs("sandbox")) == 2


async def test_reading_a_job_is_answered_by_the_lane_as_by_fastapi(pair: Pair) -> None:
    created = (await pair.lane.post(GENERATE, json=PROMPT, headers=AUTH)).json()
    a = await pair.lane.get(f"/v1/jobs/{created['id']}", headers=AUTH)
    b = await pair.plain.get(f"/v1/jobs/{created['id']}", headers=AUTH)
    assert a.status_code == 200 and a.content == b.content
    assert _headers(a) == _headers(b)
    assert pair.handoffs == 0


KEY = "/headers/Authorization"


@pytest.mark.parametrize(
    ("content", "headers", "status", "code", "pointer"),
    [
        (b'{"prompt": ', {"Content-Type": "application/json"}, 400, "invalid_json", ""),
        (b"", {"Content-Type": "application/json"}, 422, "invalid_parameter", ""),
        (b'{"provider": "imagepig"}', {"Content-Type": "application/json"}, 422, None, "/prompt"),
        (
            b'{"prompt": 7}',
            {"Content-Type": "application/json"},
            422,
            "invalid_parameter",
            "/prompt",
        ),
        (json.dumps(PROMPT).encode(), {"Content-Type": "text/plain"}, 422, None, ""),
        (
            json.dumps(PROMPT).encode(),
            {"Cancel-After": "soon"},
            400,
            "invalid_parameter",
            "/headers/Cancel-After",
        ),
        (json.dumps(PROMPT).encode(), {"Authorization": "Bearer mg_live_nobody"}, 401, None, KEY),
        (json.dumps(PROMPT).encode(), {"Authorization": "Basic abc"}, 401, None, KEY),
    ],
)
async def test_bad_submissions_go_to_fastapi_before_anything_is_written(
    pair: Pair,
    content: bytes,
    headers: dict[str, str],
    status: int,
    code: str | None,
    pointer: str,
) -> None:
    sent = {**AUTH, "Content-Type": "application/json", **headers}
    answer = await both(pair, "POST", GENERATE, content=content, headers=sent)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    if code is not None:
        assert answer.json()["code"] == code
    assert answer.json()["errors"][0]["pointer"] == pointer
    assert pair.handoffs == 1
    assert await pair.gateway.redis.zcard(keys.tenant_jobs("sandbox")) == 0


@pytest.mark.parametrize(
    "content",
    [
        b"\xef\xbb\xbf" + json.dumps(PROMPT).encode(),  # a byte-order mark
        json.dumps(PROMPT).encode("utf-16"),
        b'{"prompt": "x", "provider": "imagepig", "metadata": {"a": "\\ud800"}}',
        b'{"prompt": "x", "metadata": ' + b'{"a": ' * 201 + b"1" + b"}" * 202,
    ],
)
async def test_json_the_lane_does_not_parse_is_read_by_fastapi(pair: Pair, content: bytes) -> None:
    """JSON that ``json.loads`` takes and pydantic's own parser does not is the FastAPI
    route's to read, and answered as it answers it."""
    sent = {**AUTH, "Content-Type": "application/json"}
    await both(pair, "POST", GENERATE, content=content, headers=sent)
    assert pair.handoffs == 1


@pytest.mark.parametrize(
    "content",
    [
        b'{"prompt": "first", "prompt": "last", "provider": "imagepig"}',
        b'{"prompt": "caf\\u00e9 \\ud83d\\ude00 \\/", "provider": "imagepig"}',
        b'{"prompt": "x", "provider": "imagepig", "metadata": {"n": [1, 1.0, -0.0, 1e400, 1E-5,'
        b' 123456789012345678901234567890, 0.30000000000000004], "m": {"n": null}}}',
        b'{"prompt": "x", "provider": "imagepig", "seed": 7.0, "width": 512.0}',
    ],
)
@pytest.mark.parametrize("in_core", [True, False])
async def test_json_the_lane_parses_reads_as_fastapi_reads_it(
    pair: Pair, content: bytes, in_core: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether pydantic parses the body or ``json.loads`` does (a process with a lower limit
    on an integer's digits than pydantic's parser)."""
    monkeypatch.setattr(fast_routes, "_JSON_IN_CORE", in_core)
    sent = {**AUTH, "Content-Type": "application/json"}
    await both(pair, "POST", GENERATE, content=content, headers=sent)
    assert pair.handoffs == 0


async def test_repeated_header_fields_are_read_alike(pair: Pair) -> None:
    """The lane reads the first of a repeated field, as ``Request.headers`` does."""
    for fields in (
        [("Prefer", "wait=0"), ("Prefer", "wait=5")],
        [("Cache-Control", "no-store"), ("Cache-Control", "no-cache")],
        [("Authorization", AUTH["Authorization"]), ("Authorization", "Bearer mg_live_nobody")],
        [("Authorization", "Bearer mg_live_nobody"), ("Authorization", AUTH["Authorization"])],
    ):
        sent = [("Content-Type", "application/json"), *fields]
        if not any(name == "Authorization" for name, _ in fields):
            sent.append(("Authorization", AUTH["Authorization"]))
        await both(pair, "POST", GENERATE, json=PROMPT, headers=sent)
    keyed = [*AUTH.items(), ("Idempotency-Key", "one"), ("Idempotency-Key", "two")]
    for client in (pair.lane, pair.plain):
        first = await client.post(GENERATE, json=PROMPT, headers=keyed)
        again = await client.post(
            GENERATE, json=PROMPT, headers=[*AUTH.items(), ("Idempotency-Key", "one")]
        )
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content


async def test_errors_after_the_rate_check_are_the_application_handlers(pair: Pair) -> None:
    unsupported = {"prompt": "x", "provider": "perfectcorp"}
    answer = await both(pair, "POST", GENERATE, json=unsupported, headers=AUTH)
    assert answer.status_code == 422
    missing = await both(pair, "GET", "/v1/jobs/job_0123456789abcdef0123456789ab", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert missing.json()["errors"][0]["pointer"] == "/path/job_id"
    assert pair.handoffs == 0


async def test_idempotent_replays_match(pair: Pair) -> None:
    for client in (pair.lane, pair.plain):
        key = {"Idempotency-Key": f"k-{id(client)}", **AUTH}
        first = await client.post(GENERATE, json=PROMPT, headers=key)
        again = await client.post(GENERATE, json=PROMPT, headers=key)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content and again.status_code == first.status_code
        other = await client.post(GENERATE, json={**PROMPT, "prompt": "no"}, headers=key)
        assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    too_long = {"Idempotency-Key": "k" * 256, **AUTH}
    await both(pair, "POST", GENERATE, json=PROMPT, headers=too_long)
    assert pair.handoffs == 0


async def test_a_suspended_or_limited_tenant_is_refused_alike(pair: Pair) -> None:
    tenants = pair.gateway.tenants
    slow = await tenants.create("slow", rate_limit_rpm=1)
    _, slow_key = await tenants.add_key(slow.id)
    slow_auth = {"Authorization": f"Bearer {slow_key}"}
    await pair.lane.get("/v1/jobs/job_0123456789abcdef0123456789ab", headers=slow_auth)
    a = await pair.lane.get("/v1/jobs/job_0123456789abcdef0123456789ab", headers=slow_auth)
    b = await pair.plain.get("/v1/jobs/job_0123456789abcdef0123456789ab", headers=slow_auth)
    assert a.status_code == b.status_code == 429
    assert a.json()["code"] == b.json()["code"] == "rate_limited"
    assert {"retry-after", "ratelimit", "ratelimit-policy"} <= set(a.headers)
    assert set(a.headers) == set(b.headers)
    assert pair.handoffs == 0
    suspended = await tenants.create("suspended")
    _, key = await tenants.add_key(suspended.id)
    await tenants.update(suspended.id, status="suspended")
    refused = await both(pair, "GET", "/v1/jobs/job_x", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403 and pair.handoffs == 1


async def test_artifact_downloads_are_answered_by_the_lane_as_by_fastapi(pair: Pair) -> None:
    content = png_bytes(40, 30)
    meta = BlobMeta(
        id=new_artifact_id(), tenant="sandbox", content_type="image/png", size=len(content)
    )
    for gateway in (pair.gateway, pair.plain_gateway):  # each app has its own data dir
        await gateway.blobs.put(meta.id, content, meta.content_type)
    await pair.gateway.files.add_artifact(meta)
    signed = httpx.URL(pair.gateway.signer.sign(f"/v1/artifacts/{meta.id}"))
    path, query = signed.path, signed.query.decode()
    whole = await both(pair, "GET", f"{path}?{query}")
    assert whole.status_code == 200 and whole.content == content
    part = await both(pair, "GET", f"{path}?{query}", headers={"Range": "bytes=2-9"})
    assert part.status_code == 206 and part.content == content[2:10]
    past = await both(pair, "GET", f"{path}?{query}", headers={"Range": "bytes=99999-"})
    assert past.status_code == 416
    forged = await both(pair, "GET", f"{path}?{query[:-3]}abc")
    assert forged.status_code == 404
    for sig in ("%C3%A9", "%FF"):  # not ASCII: refused as any wrong signature
        other = await both(pair, "GET", f"{path}?{query.partition('&sig=')[0]}&sig={sig}")
        assert other.status_code == 404 and other.content == forged.content
    assert pair.handoffs == 0
    unsigned = await both(pair, "GET", path)
    not_a_number = await both(pair, "GET", f"{path}?expires=soon&sig=x")
    huge = await both(pair, "GET", f"{path}?expires={'9' * 5000}&sig=x")
    assert unsigned.status_code == not_a_number.status_code == huge.status_code == 422
    assert pair.handoffs == 3


async def _limited(pair: Pair, name: str, credits: int) -> tuple[str, dict[str, str]]:
    """A tenant allowed one request a minute (a burst of one), with ``credits``."""
    tenant = await pair.gateway.tenants.create(name, rate_limit_rpm=1)
    _, key = await pair.gateway.tenants.add_key(tenant.id)
    if credits:
        await pair.gateway.accounting.ledger.grant(tenant.id, credits, "test")
    return tenant.id, {"Authorization": f"Bearer {key}"}


def _same_refusal(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code == 429, (a.text, b.text)
    assert a.json()["code"] == b.json()["code"] == "rate_limited"
    assert {"retry-after", "ratelimit", "ratelimit-policy"} <= set(a.headers)
    assert set(a.headers) == set(b.headers)


async def test_a_plain_submission_over_its_rate_is_refused_alike_and_writes_nothing(
    pair: Pair,
) -> None:
    """The lane leaves a plain submission's rate check to the script that creates its job:
    over the rate, the answer is FastAPI's 429 and nothing is created or held."""
    answers = []
    for client, name in ((pair.lane, "lane"), (pair.plain, "plain")):
        tenant_id, auth = await _limited(pair, name, credits=1_000)
        first = await client.post(GENERATE, json=PROMPT, headers=auth)
        assert first.status_code == 202
        answers.append(await client.post(GENERATE, json=PROMPT, headers=auth))
        assert await pair.gateway.redis.zcard(keys.tenant_jobs(tenant_id)) == 1
        account = await pair.gateway.accounting.ledger.account(tenant_id)
        assert account.reserved == first.json()["credits"]["reserved"]
    _same_refusal(*answers)
    assert pair.handoffs == 0


@pytest.mark.parametrize(
    ("body", "credits", "status"),
    [
        (PROMPT, 0, 402),  # refused by the creation's script, after counting the request
        ({"prompt": "x", "provider": "perfectcorp"}, 1_000, 422),  # refused before it
    ],
)
async def test_a_refused_submission_still_counts_against_the_rate(
    pair: Pair, body: dict[str, Any], credits: int, status: int
) -> None:
    """Every request counts once, whether the rate check went with the creation or, when the
    submission stopped before it, was made then: the next request is over the rate."""
    answers = []
    for client, name in ((pair.lane, "lane"), (pair.plain, "plain")):
        tenant_id, auth = await _limited(pair, name, credits)
        first = await client.post(GENERATE, json=body, headers=auth)
        assert first.status_code == status, first.text
        answers.append(await client.post(GENERATE, json=body, headers=auth))
        assert await pair.gateway.redis.zcard(keys.tenant_jobs(tenant_id)) == 0
    _same_refusal(*answers)
    assert pair.handoffs == 0


async def test_submissions_that_write_before_their_job_check_the_rate_first(pair: Pair) -> None:
    """With inline media (stored before the job) or an ``Idempotency-Key`` (reserved before
    it), the lane checks the rate first, as FastAPI does: over it, nothing is stored."""
    image = {"data": base64.b64encode(png_bytes(16, 16)).decode()}
    remove = {"image": image}
    for client, name in ((pair.lane, "lane"), (pair.plain, "plain")):
        tenant_id, auth = await _limited(pair, name, credits=1_000)
        assert (await client.get("/v1/jobs/job_x", headers=auth)).status_code == 404
        refused = await client.post("/v1/images/remove-background", json=remove, headers=auth)
        keyed = {**auth, "Idempotency-Key": "once"}
        again = await client.post(GENERATE, json=PROMPT, headers=keyed)
        assert refused.status_code == again.status_code == 429
        assert await pair.gateway.redis.get(keys.storage_used(tenant_id)) is None
        assert await pair.gateway.redis.zcard(keys.tenant_jobs(tenant_id)) == 0
        replay = await client.post(GENERATE, json=PROMPT, headers=keyed)
        assert replay.status_code == 429  # the key was not reserved by the refused request
    assert pair.handoffs == 0


async def test_a_finished_job_reads_the_same_through_the_lane_each_time(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane keeps a read job's JSON (``RenderedJobs``): read again, and after it changed,
    it is still the FastAPI route's answer byte for byte, its artifact URLs signed anew."""
    monkeypatch.setattr("app.signing.time", SimpleNamespace(time=lambda: 1_900_000_000.0))
    queued = (await pair.lane.post(GENERATE, json=PROMPT, headers=AUTH)).json()
    (claimed,) = await pair.gateway.jobs.store.claim(1, 30)
    assert claimed.lease is not None and claimed.record.job.id == queued["id"]
    artifacts = [
        Artifact(id=new_artifact_id(), url="", content_type="image/png", bytes=9, width=3)
        for _ in range(2)
    ]
    claimed.record.job.attempts.append(Attempt(provider="imagepig"))
    output = JobOutput(artifacts=artifacts, data={"seed": 7})
    await pair.gateway.jobs.runner.lifecycle.succeed(claimed, claimed.lease, output)
    done = (await pair.lane.get(f"/v1/jobs/{queued['id']}", headers=AUTH)).json()
    assert done["status"] == "succeeded" and len(done["output"]["artifacts"]) == 2
    url = f"/v1/jobs/{done['id']}"
    for _ in range(2):
        a = await pair.lane.get(url, headers=AUTH)
        b = await pair.plain.get(url, headers=AUTH)
        assert a.status_code == 200 and a.content == b.content
        assert _headers(a) == _headers(b)
    monkeypatch.setattr("app.signing.time", SimpleNamespace(time=lambda: 1_900_000_100.0))
    later = await pair.lane.get(url, headers=AUTH)
    assert later.content == (await pair.plain.get(url, headers=AUTH)).content
    first_url = a.json()["output"]["artifacts"][0]["url"]
    later_url = later.json()["output"]["artifacts"][0]["url"]
    assert later_url != first_url
    assert later_url == pair.gateway.signer.sign(f"/v1/artifacts/{artifacts[0].id}")
    queued = (await pair.lane.post(GENERATE, json=PROMPT, headers=AUTH)).json()
    url = f"/v1/jobs/{queued['id']}"
    assert (await pair.lane.get(url, headers=AUTH)).json()["status"] == "queued"
    await pair.plain.post(f"{url}/cancel", headers=AUTH)
    canceled = await pair.lane.get(url, headers=AUTH)
    assert canceled.json()["status"] == "canceled"
    assert canceled.content == (await pair.plain.get(url, headers=AUTH)).content
    tenant = await pair.gateway.tenants.create("other")
    _, key = await pair.gateway.tenants.add_key(tenant.id)
    other = {"Authorization": f"Bearer {key}"}
    assert (await both(pair, "GET", url, headers=other)).status_code == 404
    assert pair.handoffs == 0


@pytest.mark.parametrize("job_id", ["job_0123456789abcdef0123456789ab", "not-a-job-id"])
async def test_reading_a_missing_job_counts_against_the_rate_alike(pair: Pair, job_id: str) -> None:
    """The lane's read is one script with the rate check: a 404 still counts, so the next
    read is over the rate, as through FastAPI."""
    answers = []
    for client, name in ((pair.lane, "lane"), (pair.plain, "plain")):
        _, auth = await _limited(pair, f"{name}-{job_id[:3]}", credits=0)
        missing = await client.get(f"/v1/jobs/{job_id}", headers=auth)
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        assert missing.json()["errors"][0]["pointer"] == "/path/job_id"
        answers.append(await client.get(f"/v1/jobs/{job_id}", headers=auth))
    _same_refusal(*answers)
    assert pair.handoffs == 0


async def heads(pair: Pair, url: str, **kwargs: Any) -> httpx.Response:
    """The ``HEAD`` of ``url`` through the lane and through FastAPI: the same status and
    headers (``Content-Length`` included), no body."""
    a = await pair.lane.head(url, **kwargs)
    b = await pair.plain.head(url, **kwargs)
    assert a.status_code == b.status_code
    assert _headers(a) == _headers(b)
    assert a.headers["content-length"] == b.headers["content-length"]
    assert a.content == b.content == b""
    return a


async def test_heads_of_the_lane_s_routes_are_answered_by_the_lane_as_by_fastapi(
    pair: Pair,
) -> None:
    """A ``HEAD`` reaches the lane as the ``GET`` it asks about (``app.api.methods``): a job,
    a missing job and an artifact are answered there, with FastAPI's status and headers."""
    created = (await pair.lane.post(GENERATE, json=PROMPT, headers=AUTH)).json()
    url = f"/v1/jobs/{created['id']}"
    job = await heads(pair, url, headers=AUTH)
    get = await pair.lane.get(url, headers=AUTH)
    assert job.status_code == 200 and _headers(job) == _headers(get)
    assert job.headers["content-length"] == str(len(get.content))
    missing = await heads(pair, "/v1/jobs/job_0123456789abcdef0123456789ab", headers=AUTH)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    content = png_bytes(40, 30)
    meta = BlobMeta(
        id=new_artifact_id(), tenant="sandbox", content_type="image/png", size=len(content)
    )
    for gateway in (pair.gateway, pair.plain_gateway):
        await gateway.blobs.put(meta.id, content, meta.content_type)
    await pair.gateway.files.add_artifact(meta)
    signed = httpx.URL(pair.gateway.signer.sign(f"/v1/artifacts/{meta.id}"))
    artifact = await heads(pair, f"{signed.path}?{signed.query.decode()}")
    assert artifact.status_code == 200
    assert artifact.headers["content-length"] == str(len(content))
    assert pair.handoffs == 0
