"""Every error as ``application/problem+json`` (RFC 9457), validation included.

Every 4xx problem about a part of the request points at it in ``errors[]`` (``pointer``, with
the entry's ``detail`` and ``code``); the pointers are JSON pointers (RFC 6901) of these forms:

- ``/prompt``, ``/image/data``, ``/items/3/image/url``: a field of the JSON request body (of a
  form body: ``/file``);
- ``""`` (the empty pointer, the whole document): the body as a whole — not JSON
  (``invalid_json``, the decoder's position in ``detail``), not an object, missing where one is
  required, larger than the route takes (``payload_too_large``), or holding a string no encoder
  can write;
- ``/headers/<Header-Name>``: a header (``/headers/Idempotency-Key``, ``/headers/Cancel-After``,
  ``/headers/Range``); a missing, unknown or revoked API key (``401``) and a suspended
  tenant's key (``403``) point at ``/headers/Authorization``, the one place a key is taken;
  the server's own ``408`` and ``431`` (``app.serving``) at ``/headers``;
- ``/<name>``: a query parameter (``/cursor``, ``/until``);
- ``/path/<param>``: an id in the path that names nothing (``404 not_found``:
  ``/path/job_id``, ``/path/batch_id``, ``/path/artifact_id``, ``/path/tenant_id``…) or what
  is in the way (``409 conflict`` cancelling a finished job: ``/path/job_id``);
- ``/path``: the path itself (no route, or an operation no provider serves); ``/method``: a
  method the path does not take (``405``).

Problems about the account rather than the request (``402 insufficient_credits`` for a job,
``429`` rate, job and stream limits) and 5xx carry no pointer; neither does the server's
``400`` for bytes that are not an HTTP request at all.
"""

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
from app.domain.errors import (
    API_KEY_POINTER,
    ErrorCode,
    FieldError,
    GatewayError,
    InvalidRequest,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://mediagate.dev/problems/"


class ProblemFieldError(BaseModel):
    pointer: str = Field(
        examples=["/image/data"],
        description="JSON pointer (RFC 6901) to what the error is about: a body field "
        '(`/image/data`; `""` for the body as a whole), `/headers/<Header-Name>`, a query '
        "parameter (`/cursor`), `/path/<param>` (an unknown id), `/path` or `/method`.",
    )
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


def problem_body(error: GatewayError, instance: str, pointer: str | None = None) -> dict[str, Any]:
    """The problem document of ``error`` (a :class:`Problem`); ``pointer``: what an error
    without field errors of its own is about (its one entry of ``errors[]``)."""
    errors = error.errors
    if not errors and pointer is not None:
        errors = [FieldError(pointer, error.detail, error.code)]
    return {
        "type": TYPE_BASE + error.code.value,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": instance,
        "code": error.code.value,
        "errors": [
            {"pointer": e.pointer, "detail": e.detail, "code": e.code.value} for e in errors
        ],
        **error.extra,
    }


def problem_response(
    error: GatewayError,
    instance: str,
    headers: dict[str, str] | None = None,
    pointer: str | None = None,
) -> JSONResponse:
    body = problem_body(error, instance, pointer)
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM_JSON, headers=headers)


WHOLE_BODY = ""
"""The pointer of the request body as a whole (RFC 6901's pointer to the whole document)."""


def path_pointer(request: Request, ident: str | None) -> str | None:
    """``/path/<param>`` of the path parameter holding ``ident``; None when none does."""
    if ident is not None:
        for name, value in request.path_params.items():
            if value == ident:
                return f"/path/{name}"
    return None


def _pointer(loc: tuple[int | str, ...]) -> str:
    """The pointer of a validation error's location: ``("body",)`` is the whole body (``""``),
    a path parameter ``/path/<param>``, a header ``/headers/<Header-Name>``; body fields and
    query parameters are ``/<name>`` from the root."""
    parts = [str(p) for p in loc]
    where = parts[0] if parts else None
    if where == "header":
        parts = ["headers", *("-".join(w.capitalize() for w in p.split("-")) for p in parts[1:])]
    elif where in ("body", "query"):
        parts = parts[1:]
    if not parts:
        return WHOLE_BODY
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _validation_error(exc: RequestValidationError) -> GatewayError:
    errors: list[FieldError] = []
    malformed: dict[str, Any] | None = None
    for item in exc.errors():
        if item.get("type") == "json_invalid":
            malformed = item
            continue
        loc = tuple(item.get("loc", ()))
        # A union member that did not match adds noise; keep the message on the field itself.
        errors.append(FieldError(_pointer(loc), str(item.get("msg", "invalid"))))
    if malformed is not None:
        detail = "the request body is not valid JSON"
        loc, why = tuple(malformed.get("loc", ())), (malformed.get("ctx") or {}).get("error")
        if len(loc) > 1 and isinstance(loc[1], int):  # the decoder's position in the body
            detail += f": {why or 'invalid'} at character {loc[1]}"
        return InvalidRequest(detail, code=ErrorCode.invalid_json, pointer=WHOLE_BODY, status=400)
    detail = "; ".join(f"{e.pointer or 'the body'}: {e.detail}" for e in errors[:5])
    detail = detail or "invalid request"
    return GatewayError(detail, ErrorCode.invalid_parameter, 422, errors)


_HTTP_CODES = {
    401: ErrorCode.unauthenticated,
    403: ErrorCode.forbidden,
    404: ErrorCode.not_found,
    409: ErrorCode.conflict,
}

_HTTP_POINTERS = {
    400: WHOLE_BODY,  # a body FastAPI could not parse (a broken multipart form)
    401: API_KEY_POINTER,
    403: API_KEY_POINTER,
    404: "/path",  # no route
    405: "/method",
    413: WHOLE_BODY,
}
"""What a framework's ``HTTPException`` of each status is about."""


def install(app: FastAPI) -> None:
    async def gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        pointer = None if exc.errors else path_pointer(request, exc.about)
        return problem_response(exc, request.url.path, exc.headers or None, pointer)

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
        return problem_response(
            error, request.url.path, headers, _HTTP_POINTERS.get(exc.status_code)
        )

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
        # Only a JSON body can hold one (an escape): paths, queries and headers are decoded
        # with replacement characters.
        return problem_response(error, request.url.path, pointer=WHOLE_BODY)

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
