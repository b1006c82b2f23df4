"""``POST`` routes that create jobs, one per canonical operation, built from its params model.

(No ``from __future__ import annotations`` here: FastAPI reads the request model of each
generated endpoint from its live annotations.)
"""

from typing import Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import create_model

from app.api.deps import (
    CacheControlDep,
    CancelAfterDep,
    IdempotencyDep,
    IdempotencyKeyDep,
    JobsDep,
    TenantDep,
    WaitDep,
)
from app.api.idempotency import idempotent
from app.api.operation_ids import operation_id
from app.api.problems import PROBLEM_RESPONSES
from app.domain.models import Job, new_job_id
from app.domain.operations import PARAMS, ROUTES, Operation, Params
from app.jobs.envelope import Envelope, JobOptions
from app.jobs.service import JobService
from app.store.idempotency import Bound, IdempotencyStore
from app.store.rate_limits import RateCheck
from app.store.tenants import Tenant

router = APIRouter(
    generate_unique_id_function=operation_id, tags=["operations"], responses=PROBLEM_RESPONSES
)

_ENVELOPE_FIELDS = set(Envelope.model_fields)

REQUEST_MODELS: dict[Operation, type[Params]] = {}
"""Each operation's request body model (its parameters and the envelope), by operation."""


def request_schema_name(operation: Operation) -> str:
    """The name of an operation's request body in the OpenAPI document."""
    name = "".join(part.title() for part in operation.value.replace(".", "_").split("_"))
    return f"{name}Request"


def _request_model(operation: Operation, params: type[Params]) -> type[Params]:
    """The request body: the operation's parameters plus the common envelope fields."""
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in Envelope.model_fields.items()}
    return create_model(
        request_schema_name(operation),
        __base__=params,
        __config__=None,
        **fields,
    )


def _split(body: Params, params: type[Params]) -> tuple[Params, Envelope]:
    """The request body as the operation's parameters and the envelope, each with the fields
    the client gave. Both are validated from the given fields' values (already valid), which
    is cheaper than ``model_construct``: that runs field by field in Python, where validation
    runs in pydantic's core (``docs/performance.md``)."""
    given = body.model_fields_set
    values = body.__dict__
    envelope = Envelope(**{k: values[k] for k in given & _ENVELOPE_FIELDS})
    own = params.model_validate({k: values[k] for k in given - _ENVELOPE_FIELDS})
    return own, envelope


async def submit_job(
    request: Request,
    operation: Operation,
    body: Params,
    *,
    tenant: Tenant,
    jobs: JobService,
    idempotency: IdempotencyStore,
    wait_s: float,
    cancel_after_s: float | None,
    cache_control: str | None,
    idempotency_key: str | None,
    payload: bytes,
    rate: RateCheck | None = None,
) -> Response:
    """Create the job (once per ``Idempotency-Key``: under the id bound to it) and answer it:
    202, or 200 when finished within ``Prefer: wait`` or served from the result cache. The
    route below and the fast lane (``app.api.fast_routes``) both answer through this, each
    with the request's body as it read it (``payload``); the lane may leave the request's
    rate check to the job's creation (``rate``)."""
    params = PARAMS[operation]

    async def submit(bound: Bound | None) -> Response:
        own, envelope = _split(body, params)
        options = JobOptions(
            job_id=bound.id if bound is not None else None,
            may_exist=bound is not None and bound.may_exist,
            cancel_after_s=cancel_after_s,
            cache_control=cache_control,
            rate=rate,
        )
        job = await jobs.submit(tenant, operation, own, envelope, wait_s=wait_s, options=options)
        request.state.job_id = job.id
        request.state.operation = operation.value
        request.state.provider = job.provider or (
            job.attempts[-1].provider if job.attempts else None
        )
        finished = job.status.terminal  # waited for, or served from the result cache
        headers = {"Location": job.links.self}
        if wait_s > 0:
            headers["Preference-Applied"] = f"wait={int(wait_s)}"
        return Response(
            job.model_dump_json(),
            status_code=200 if finished else 202,
            media_type="application/json",
            headers=headers,
        )

    return await idempotent(
        request, idempotency_key, idempotency, tenant, payload, submit, new_id=new_job_id
    )


def _add_route(operation: Operation, params: type[Params]) -> None:
    request_model = _request_model(operation, params)
    REQUEST_MODELS[operation] = request_model

    async def create_job(
        request: Request,
        body: request_model = Body(),  # type: ignore[valid-type]  # noqa: B008
        *,
        tenant: TenantDep,
        jobs: JobsDep,
        idempotency: IdempotencyDep,
        wait_s: WaitDep,
        cancel_after_s: CancelAfterDep,
        cache_control: CacheControlDep = None,
        idempotency_key: IdempotencyKeyDep = None,
    ) -> Response:
        return await submit_job(
            request,
            operation,
            body,
            tenant=tenant,
            jobs=jobs,
            idempotency=idempotency,
            wait_s=wait_s,
            cancel_after_s=cancel_after_s,
            cache_control=cache_control,
            idempotency_key=idempotency_key,
            payload=await request.body(),
        )

    router.add_api_route(
        ROUTES[operation],
        create_job,
        methods=["POST"],
        name=operation.value.replace(".", "_"),
        summary=f"Create a {operation.value} job",
        status_code=202,
        response_model=Job,
        responses={200: {"model": Job, "description": "Finished within `Prefer: wait`"}},
    )


for _operation, _params in PARAMS.items():
    _add_route(_operation, _params)
