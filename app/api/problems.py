"""Every error as ``application/problem+json`` (RFC 9457), validation included."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.methods import allowed_methods
from app.blobs import BlobStoreError
from app.domain.errors import ErrorCode, FieldError, GatewayError, StoreUnavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://mediagate.dev/problems/"


class ProblemFieldError(BaseModel):
    pointer: str = Field(examples=["/image/data"])
    detail: str
    code: str


class Problem(BaseModel):
    """An error (RFC 9457), with a stable ``code`` to switch on."""

    type: str = Field(examples=[f"{TYPE_BASE}invalid_parameter"])
    title: str
    status: int
    detail: str
    instance: str
    code: ErrorCode
    errors: list[ProblemFieldError] = Field(default_factory=list)


def problem_body(error: GatewayError, instance: str) -> dict[str, Any]:
    """The problem document of ``error`` (a :class:`Problem`)."""
    return {
        "type": TYPE_BASE + error.code.value,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": instance,
        "code": error.code.value,
        "errors": [
            {"pointer": e.pointer, "detail": e.detail, "code": e.code.value} for e in error.errors
        ],
        **error.extra,
    }


def problem_response(
    error: GatewayError, instance: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = problem_body(error, instance)
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM_JSON, headers=headers)


def _pointer(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _validation_error(exc: RequestValidationError) -> GatewayError:
    errors: list[FieldError] = []
    malformed = False
    for item in exc.errors():
        if item.get("type") == "json_invalid":
            malformed = True
            continue
        loc = tuple(item.get("loc", ()))
        # A union member that did not match adds noise; keep the message on the field itself.
        errors.append(FieldError(_pointer(loc), str(item.get("msg", "invalid"))))
    if malformed:
        return GatewayError("the request body is not valid JSON", ErrorCode.invalid_json, 400)
    detail = "; ".join(f"{e.pointer}: {e.detail}" for e in errors[:5]) or "invalid request"
    return GatewayError(detail, ErrorCode.invalid_parameter, 422, errors)


_HTTP_CODES = {
    401: ErrorCode.unauthenticated,
    403: ErrorCode.forbidden,
    404: ErrorCode.not_found,
    409: ErrorCode.conflict,
}


def install(app: FastAPI) -> None:
    async def gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        return problem_response(exc, request.url.path, exc.headers or None)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(_validation_error(exc), request.url.path)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.invalid_parameter)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            code = ErrorCode.invalid_parameter
            # every method the path takes (RFC 9110 §15.5.6), not only the first route's
            allow = allowed_methods(request.scope)
            if allow:
                headers["Allow"] = allow
        error = GatewayError(str(exc.detail), code, exc.status_code)
        return problem_response(error, request.url.path, headers)

    async def store_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("store unavailable: %s", type(exc).__name__)
        return problem_response(StoreUnavailable(), request.url.path, {"Retry-After": "1"})

    async def unencodable(request: Request, exc: Exception) -> JSONResponse:
        # A string no UTF-8 encoder can write (a lone surrogate, "\ud800") reached a store.
        # Operations refuse these before storing anything (app.domain.json_values); this
        # answers the same for any other route instead of a 500.
        if "surrogate" not in str(exc):
            return await unexpected(request, exc)
        error = GatewayError(
            "strings must be valid Unicode (no lone surrogates)", ErrorCode.invalid_parameter, 422
        )
        return problem_response(error, request.url.path)

    async def store_refused(request: Request, exc: Exception) -> JSONResponse:
        """A primary configured with ``min-replicas-to-write`` and too few replicas refuses
        every write (NOREPLICAS): retryable, nothing was stored."""
        if "NOREPLICAS" in str(exc):
            return await store_down(request, exc)
        return await unexpected(request, exc)

    async def blobs_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("object store unavailable: %s", exc)
        error = StoreUnavailable("the object store is unavailable, retry shortly")
        return problem_response(error, request.url.path, {"Retry-After": "1"})

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        error = GatewayError("an internal error occurred", ErrorCode.internal_error, 500)
        return problem_response(error, request.url.path)

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RedisConnectionError, store_down)
    app.add_exception_handler(RedisTimeoutError, store_down)
    app.add_exception_handler(UnicodeEncodeError, unencodable)
    app.add_exception_handler(RedisResponseError, store_refused)
    app.add_exception_handler(BlobStoreError, blobs_down)
    app.add_exception_handler(Exception, unexpected)


def problem_doc(description: str) -> dict[str, Any]:
    """An error response of the OpenAPI document: ``description``, a ``Problem`` as
    problem+json. The schema is referred to rather than given as ``model``: FastAPI builds a
    validator for each route's each ``model`` response (nine per route, 565 in all, a sixth of
    the application's import), which only the document would use. The ``Problem`` schema is in
    the document's components through the few responses that still name it as ``model``
    (``artifacts``, ``upstream_callbacks``)."""
    schema = {"$ref": f"#/components/schemas/{Problem.__name__}"}
    return {"content": {PROBLEM_JSON: {"schema": schema}}, "description": description}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: problem_doc(text)
    for status, text in {
        400: "Malformed request",
        401: "Missing or unknown API key",
        403: "Tenant suspended",
        404: "Unknown id",
        409: "Conflict (e.g. an Idempotency-Key whose first request is still running)",
        413: "Media too large",
        422: "Invalid or unsupported parameter",
        429: "Rate or concurrency limit reached; see Retry-After",
        503: "Store unavailable",
    }.items()
}
"""Declared on every route so the OpenAPI document shows the error schema (any other status,
e.g. 402 or 500, is the ``default`` response ``app.api.docs`` adds)."""
