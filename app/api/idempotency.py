"""``Idempotency-Key`` on POST routes (Stripe / IETF draft semantics).

Same key and same request → the stored response, with ``Idempotent-Replayed: true``; same
key, different request → ``422 idempotency_key_reused``; the first request still running →
``409 idempotency_key_in_flight`` (the key is held longer than such a request can run:
``app.store.idempotency.lock_for``). Keys are scoped per tenant and kept 24 hours.

One key makes its object once. A route that makes one gives :func:`idempotent` a ``new_id``:
the key is bound to one id when it is new (``app.store.idempotency.Bound``), and every
attempt of the request makes its object under that id, which the store refuses to make twice.
An attempt whose outcome is unknown — a store or object-store error (or any other that is
not a refusal), a reply lost after the creation ran, a cancellation (the client went away, the
process is stopping), a process that died and left its lock to lapse — leaves the key bound:
the next attempt is told the object may exist (``Bound.may_exist``) and answers it as it
stands when it does. A request refused before it made anything (a 4xx: 402, 413, 422, 429 …)
frees the key, so the client may retry it, or send another request, with the same key —
unless an earlier attempt's outcome was unknown, when the key stays bound to its request.
A response that cannot be stored against its key is still answered; the key is released,
and a retry answers the object the request made.

What each route binds:

- ``POST`` to an operation's route: the job's id (``JobOptions.job_id``); the job, its
  credit hold and its upstream task exist at most once. The job answered as it stands to a
  later attempt is the tenant's own (another tenant's id is ``404``, as everywhere). An
  attempt that stored its inline media and then finds the job made deletes its copy
  (``JobService._create``): the tenant keeps the job's.
- ``POST /v1/batches``: the batch's id; its items' job ids are chosen by the batch's driver
  and kept on the batch before each job is made (``app.jobs.batches``), so one batch makes
  each of its jobs once.
- ``POST /v1/files``: the file's id; a later attempt finds the file counted against the
  storage quota already and writes its bytes again (the same bytes: the fingerprint covers
  them) instead of counting a second file.
- ``POST /v1/jobs/{id}/cancel``: nothing; canceling is idempotent on the job itself (a
  canceled job is answered again), so its key is freed whatever the error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from typing import Any

from fastapi import Request, Response

from app.domain.errors import ErrorCode, GatewayError, InvalidRequest
from app.store.idempotency import Bound, IdempotencyStore, InFlight, Mismatch, Replay
from app.store.tenants import Tenant

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
POINTER = f"/headers/{HEADER}"
MAX_KEY_LENGTH = 255
_REPLAYED_HEADERS = ("location", "preference-applied")


def fingerprint(request: Request, payload: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}\n".encode())
    digest.update(payload)
    return digest.hexdigest()


async def idempotent(
    request: Request,
    key: str | None,
    store: IdempotencyStore,
    tenant: Tenant,
    payload: bytes,
    run: Callable[[Bound | None], Awaitable[Response]],
    *,
    new_id: Callable[[], str] | None = None,
) -> Response:
    """Run ``run`` at most once per (tenant, ``Idempotency-Key``); replay its response after.

    ``key`` is the request's ``Idempotency-Key`` (``IdempotencyKeyDep`` reads it), None
    without one; ``payload`` is what the request's fingerprint covers besides its method and
    path (read only when there is a key). ``run`` is given the id bound to the key (``None``
    without a key or without ``new_id``, the maker of a new id for a route that makes an
    object under one): it makes its object under that id, and answers the object as it stands
    when it exists already."""
    if key is None:
        return await run(None)
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"{HEADER} must be 1–{MAX_KEY_LENGTH} characters",
            pointer=POINTER,
            status=400,
        )
    print_ = fingerprint(request, payload)
    began = await store.begin(tenant.id, key, print_, new_id() if new_id is not None else None)
    if isinstance(began, Replay):
        headers = {**began.headers, "Idempotent-Replayed": "true"}
        return Response(began.body, began.status, headers, media_type="application/json")
    if isinstance(began, Mismatch):
        raise InvalidRequest(
            f"this {HEADER} was used for a different request",
            code=ErrorCode.idempotency_key_reused,
            pointer=POINTER,
        )
    if isinstance(began, InFlight):
        in_flight = InvalidRequest(
            f"a request with this {HEADER} is still being processed",
            code=ErrorCode.idempotency_key_in_flight,
            pointer=POINTER,
            status=409,
        )
        in_flight.headers = {"Retry-After": "1"}
        raise in_flight
    try:
        response = await run(began.bound)
    except BaseException as exc:
        forget = began.bound is None or _refused(exc)
        await _abandon(store.abandon(tenant.id, key, began.attempt, forget=forget))
        raise
    kept = {k: v for k, v in response.headers.items() if k in _REPLAYED_HEADERS}
    try:
        await store.complete(
            tenant.id, key, print_, response.status_code, kept, bytes(response.body)
        )
    except Exception:
        # The request made its object: it is the answer. A retry with the key answers the
        # object as it stands (the key stays bound to it), once released here or its lock lapses.
        log.warning("%s: the response was not stored against its key", HEADER, exc_info=True)
        await _abandon(store.abandon(tenant.id, key, began.attempt, forget=began.bound is None))
    return response


_abandoning: set[asyncio.Task[bool]] = set()


async def _abandon(abandon: Coroutine[Any, Any, bool]) -> None:
    """Abandon a key, to its end even when the request is being cancelled (the client went
    away, the process is stopping): a cancellation stops the wait, never the abandon. One
    that fails leaves the key to its lock, which lapses with its binding kept."""
    task = asyncio.ensure_future(abandon)
    _abandoning.add(task)
    task.add_done_callback(_abandoned)
    with suppress(Exception):
        await asyncio.shield(task)


def _abandoned(task: asyncio.Task[bool]) -> None:
    _abandoning.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s: the key was not abandoned: %r", HEADER, task.exception())


def _refused(exc: BaseException) -> bool:
    """The request was refused before it made anything: a client error (4xx), which every
    route raises only before its object is made."""
    return isinstance(exc, GatewayError) and exc.status < 500
