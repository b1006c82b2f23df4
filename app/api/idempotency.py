"""``Idempotency-Key`` on POST routes (Stripe / IETF draft semantics).

Same key and same request → the stored response, with ``Idempotent-Replayed: true``; same
key, different request → ``422 idempotency_key_reused``; the first request still running →
``409 idempotency_key_in_flight`` (the key is held longer than such a request can run:
``app.store.idempotency.lock_for``). Keys are scoped per tenant and kept 24 hours. A request
that fails with an error is not stored, so the client may retry it with the same key. A job
submission fails only before its job exists: once created, the job is its answer, whatever
fails after (``JobService.submit``), so one key never creates a second job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from app.domain.errors import ErrorCode, GatewayError, InvalidRequest
from app.store.idempotency import IdempotencyStore, InFlight, Mismatch, Replay
from app.store.tenants import Tenant

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_REPLAYED_HEADERS = ("location", "preference-applied")


def fingerprint(request: Request, payload: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}\n".encode())
    digest.update(payload)
    return digest.hexdigest()


async def idempotent(
    request: Request,
    store: IdempotencyStore,
    tenant: Tenant,
    payload: bytes,
    run: Callable[[], Awaitable[Response]],
) -> Response:
    """Run ``run`` at most once per (tenant, ``Idempotency-Key``); replay its response after."""
    key = request.headers.get(HEADER)
    if key is None:
        return await run()
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"{HEADER} must be 1–{MAX_KEY_LENGTH} characters",
            pointer=f"/headers/{HEADER}",
            status=400,
        )
    print_ = fingerprint(request, payload)
    began = await store.begin(tenant.id, key, print_)
    if isinstance(began, Replay):
        headers = {**began.headers, "Idempotent-Replayed": "true"}
        return Response(began.body, began.status, headers, media_type="application/json")
    if isinstance(began, Mismatch):
        raise GatewayError(
            f"this {HEADER} was used for a different request",
            ErrorCode.idempotency_key_reused,
            422,
        )
    if isinstance(began, InFlight):
        raise GatewayError(
            f"a request with this {HEADER} is still being processed",
            ErrorCode.idempotency_key_in_flight,
            409,
            headers={"Retry-After": "1"},
        )
    try:
        response = await run()
    except BaseException:
        await store.abandon(tenant.id, key)
        raise
    kept = {k: v for k, v in response.headers.items() if k in _REPLAYED_HEADERS}
    await store.complete(tenant.id, key, print_, response.status_code, kept, bytes(response.body))
    return response
