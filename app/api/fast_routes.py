"""The hottest routes answered without FastAPI's per-request machinery: a pure ASGI lane.

``POST`` of an operation (create a job), ``GET /v1/jobs/{job_id}`` and the signed artifact
download ``GET /v1/artifacts/{artifact_id}`` are most of a gateway's traffic. Through FastAPI
each pays its route scan (twice: FastAPI matches an included router as a branch and again to
dispatch), the dependency solver for a dozen parameters, and two more middleware layers; that
was over 40 % of a ``GET``'s Python calls (``bench.cpu``). This layer sits innermost among the
application's middleware (inside the body limit and the request metrics) and answers those
routes itself, through the same functions the FastAPI routes call (``app.api.deps``,
``submit_job``, ``JobService``, ``artifact_response``). The routes stay declared in FastAPI
for the OpenAPI document and for every other case.

Same answers, by construction: the lane checks everything that has no side effect first
(the JSON body against the operation's request model, ``Prefer``, ``Cancel-After``, the API
key and the tenant's status, the artifact URL's query). When any of that is not a plain
success, it hands the request, with the body it read replayed, to the FastAPI route, which
produces its usual answer, problem+json included. Only after the rate-limit check (the first
write) does the lane answer errors itself, with the application's own exception handlers
looked up as Starlette's ``ExceptionMiddleware`` looks them up; anything without a handler
propagates to the server-error layer as before.

A submission that writes and fetches nothing before its job is created leaves its rate check
to the script that creates the job (one round trip for both, ``RateCheck``); if it fails
before the creation, its rate is checked then, so it is counted once and a request over its
rate is answered 429 as FastAPI answers it. A ``GET`` of a job is one script, the rate check
and the read (``read_job.lua``), and answers the JSON kept from the job's last read when it
has not changed since (``RenderedJobs``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import (
    Services,
    active_caller,
    answer_rate_refused,
    bearer_key,
    cancel_after_seconds,
    check_rate,
    rate_check_of,
    wait_seconds,
)
from app.api.routes import artifacts as artifact_routes
from app.api.routes import jobs as job_routes
from app.api.routes import operations as operation_routes
from app.domain.operations import ROUTES, Operation, Params
from app.store.rate_limits import RateCheck, RateRefused
from app.store.tenants import Tenant

JOBS_PREFIX = "/v1/jobs/"
ARTIFACTS_PREFIX = "/v1/artifacts/"


class _Handoff(Exception):
    """Not a plain success before any side effect: the FastAPI route answers instead."""


class FastRoutes:
    """The ASGI layer; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.operations: dict[str, tuple[Operation, type[Params], APIRoute]] = {}
        for route in operation_routes.router.routes:
            assert isinstance(route, APIRoute)
            operation = next(op for op, path in ROUTES.items() if path == route.path)
            model = operation_routes.REQUEST_MODELS[operation]
            self.operations[route.path] = (operation, model, route)
        self.get_job = _route(job_routes.router.routes, "get_job")
        self.get_artifact = _route(artifact_routes.router.routes, "get_artifact")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            if method == "POST" and path in self.operations:
                await self._create_job(scope, receive, send, *self.operations[path])
                return
            if method == "GET" and path.startswith(JOBS_PREFIX):
                job_id = path[len(JOBS_PREFIX) :]
                if job_id and "/" not in job_id:
                    await self._get_job(scope, receive, send, job_id)
                    return
            if method == "GET" and path.startswith(ARTIFACTS_PREFIX):
                artifact_id = path[len(ARTIFACTS_PREFIX) :]
                if artifact_id and "/" not in artifact_id:
                    await self._get_artifact(scope, receive, send, artifact_id)
                    return
        await self.app(scope, receive, send)

    async def _get_job(self, scope: Scope, receive: Receive, send: Send, job_id: str) -> None:
        request = Request(scope, receive)
        services: Services = scope["app"].state.gateway
        try:
            tenant = await active_caller(services, bearer_key(_fields(scope).get("authorization")))
        except Exception:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.get_job
        scope["path_params"] = {"job_id": job_id}
        request.state.tenant_id = tenant.id
        rate = rate_check_of(services, tenant)
        try:
            # The rate check and the read in one script; nothing is read when refused.
            try:
                text = await services.jobs.get_json(tenant, job_id, rate)
            except RateRefused as refused:
                answer_rate_refused(services, rate, refused)
                raise
            response = Response(text, media_type="application/json")
        except Exception as exc:
            response = await _handled(scope, request, exc)
        await response(scope, receive, send)

    async def _get_artifact(
        self, scope: Scope, receive: Receive, send: Send, artifact_id: str
    ) -> None:
        request = Request(scope, receive)
        query = request.query_params
        expires, sig = query.get("expires"), query.get("sig")
        # a few plain digits read the same as FastAPI's int; anything else is the route's
        if sig is None or not _plain_int(expires):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.get_artifact
        scope["path_params"] = {"artifact_id": artifact_id}
        services: Services = scope["app"].state.gateway
        try:
            response = await artifact_routes.artifact_response(
                request, artifact_id, int(str(expires)), sig, services
            )
        except Exception as exc:
            response = await _handled(scope, request, exc)
        await response(scope, receive, send)

    async def _create_job(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        operation: Operation,
        model: type[Params],
        route: APIRoute,
    ) -> None:
        body, replay = await _read_body(receive)
        request = Request(scope, replay)
        headers = _fields(scope)
        services: Services = scope["app"].state.gateway
        try:
            if body is None:
                raise _Handoff
            params = _json_body(headers, body, model)
            wait_s = wait_seconds(headers.get("prefer"), services.settings)
            cancel_after_s = cancel_after_seconds(headers.get("cancel-after"))
            tenant = await active_caller(services, bearer_key(headers.get("authorization")))
        except Exception:
            await self.app(scope, replay, send)
            return
        scope["route"] = route
        request.state.tenant_id = tenant.id
        rate = rate_check_of(services, tenant) if _plain(params, headers) else None
        try:
            if rate is None:
                await check_rate(services, tenant)
            response = await operation_routes.submit_job(
                request,
                operation,
                params,
                tenant=tenant,
                jobs=services.jobs,
                idempotency=services.idempotency,
                wait_s=wait_s,
                cancel_after_s=cancel_after_s,
                cache_control=headers.get("cache-control"),
                idempotency_key=headers.get("idempotency-key"),
                payload=body,
                rate=rate,
            )
        except Exception as exc:
            answered = await _rate_first(services, tenant, rate, exc)
            response = await _handled(scope, request, answered)
        await response(scope, replay, send)


def _plain(params: Params, headers: dict[str, str]) -> bool:
    """A submission whose rate check can go with its job's creation: nothing is written or
    fetched before the creation (no inline media to store, no URL to check, no callback URL,
    no ``Idempotency-Key`` to reserve), so a request over its rate costs no more than checks
    on the CPU, and is answered as if refused first."""
    if headers.get("idempotency-key") is not None or getattr(params, "callback_url", None):
        return False
    return all(ref.data is None and ref.url is None for ref in params.media().values())


async def _rate_first(
    services: Services, tenant: Tenant, rate: RateCheck | None, exc: Exception
) -> Exception:
    """The error to answer for a submission that failed: over its rate, the 429 it would
    have had first (a rate check left to the creation, refused there; or, when the
    submission stopped before its creation, the rate check made now, so it is counted)."""
    try:
        if isinstance(exc, RateRefused) and rate is not None:
            answer_rate_refused(services, rate, exc)
        if rate is not None and not rate.sent:
            await check_rate(services, tenant)
    except Exception as refused:
        return refused
    return exc


def _plain_int(value: str | None) -> bool:
    return value is not None and 0 < len(value) <= 18 and value.isascii() and value.isdigit()


def _route(routes: list[Any], name: str) -> APIRoute:
    return next(r for r in routes if isinstance(r, APIRoute) and r.name == name)


async def _read_body(receive: Receive) -> tuple[bytes | None, Receive]:
    """The whole request body (None when the client left first), and a ``receive`` that
    gives the same messages again, then the original's."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = (
        b"".join(m.get("body", b"") for m in messages)
        if messages[-1]["type"] == "http.request"
        else None
    )
    if body is not None and len(messages) > 1:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return body, replay


def _fields(scope: Scope) -> dict[str, str]:
    """The request's header fields by name, the first of each name: what ``Request.headers``
    answers, read in one pass instead of one scan of every field per look-up (Starlette's
    ``Headers.get`` costs some 4,000 instructions, twice that for a field that is absent)."""
    fields: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in fields:
            fields[key] = value.decode("latin-1")
    return fields


def _json_body(headers: dict[str, str], body: bytes, model: type[Params]) -> Params:
    """The body as the operation's request model, read as FastAPI reads a JSON body; any
    other body (not JSON, empty, invalid) is the FastAPI route's to answer."""
    content_type = headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if not body or media_type != "application/json":
        raise _Handoff
    if not _JSON_IN_CORE:
        data: Any = json.loads(body)
        return model.model_validate(data, from_attributes=True)
    # Parsed and validated in one step in pydantic's core, at half the instructions of
    # ``json.loads`` and validating the objects it made. What it takes, it reads as
    # ``json.loads`` does (numbers, escapes, repeated names: the last); what it refuses
    # (a byte-order mark, UTF-16, a lone surrogate escape, nesting past 200 levels) is handed
    # to the FastAPI route, which reads it as before.
    return model.model_validate_json(body)


_DIGITS = sys.get_int_max_str_digits()
_JSON_IN_CORE = _DIGITS == 0 or _DIGITS >= 4300
"""pydantic's parser takes integers of up to 4,300 digits, the most ``int()`` takes by default;
a process that lowers that limit (``PYTHONINTMAXSTRDIGITS``) keeps ``json.loads``, so that a
longer integer is still refused as FastAPI refuses it."""


async def _handled(scope: Scope, request: Request, exc: Exception) -> Response:
    """The application's answer to ``exc``, found as Starlette's ``ExceptionMiddleware`` finds
    it (by the exception's class, nearest first); re-raised when only the catch-all
    ``Exception`` handler (the server-error layer's) would answer it."""
    handlers = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            break
        handler = handlers.get(cls)
        if handler is not None:
            response: Response = await handler(request, exc)
            return response
    raise exc
