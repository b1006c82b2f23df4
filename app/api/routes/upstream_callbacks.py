"""Where upstreams report that a task ended: ``POST /v1/providers/{name}/callbacks/{token}``.

No tenant key: the unguessable per-job token in the path is the credential. The callback is a
hint, never an outcome: it makes the job due now and the worker's next step asks the upstream
for the job's status (``app/jobs/upstream_callbacks.py`` says why, and what each answer means).
The body is read only to keep its size in bounds, then dropped.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.api.deps import MetricsDep, UpstreamCallbacksDep
from app.api.operation_ids import operation_id
from app.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES, WHOLE_BODY, Problem
from app.domain.errors import ErrorCode, GatewayError, InvalidRequest
from app.jobs.upstream_callbacks import MAX_BODY_BYTES, CallbackOutcome

RESPONSES: dict[int | str, dict[str, Any]] = {
    # 401 and 422 are declared on every /v1 route; this one takes no key and no parameters
    # beyond its path, so neither is answered here in practice.
    **{status: PROBLEM_RESPONSES[status] for status in (401, 422, 503)},
    404: {
        "model": Problem,
        "content": {PROBLEM_JSON: {}},
        "description": "Unknown provider, or a token that is not one this gateway issued",
    },
    413: {
        "model": Problem,
        "content": {PROBLEM_JSON: {}},
        "description": f"Body over {MAX_BODY_BYTES} bytes",
    },
}

router = APIRouter(
    generate_unique_id_function=operation_id, tags=["upstream callbacks"], responses=RESPONSES
)


class CallbackReceipt(BaseModel):
    """The callback was taken; the job's status is checked with the upstream."""

    received: bool = True


@router.post(
    "/v1/providers/{name}/callbacks/{token}",
    name="receive_upstream_callback",
    status_code=202,
    response_model=CallbackReceipt,
    response_description="Taken: the job's status is now checked with the upstream",
)
async def receive_upstream_callback(
    name: str,
    token: str,
    request: Request,
    callbacks: UpstreamCallbacksDep,
    metrics: MetricsDep,
) -> CallbackReceipt:
    """An upstream's notice that a task ended (Everypixel's `callback`, ImagePipeline's
    `callback_url`), at the URL the gateway gave it with the job. The job is then polled at
    once; what the notice says is not trusted. A job already finished answers 202 too."""
    provider = callbacks.label(name)
    job_id = callbacks.verify(name, token)
    if job_id is None:
        metrics.upstream_callback(provider, CallbackOutcome.rejected)
        raise GatewayError("no such callback", ErrorCode.not_found, 404, about=token)
    request.state.job_id = job_id  # for the request's log line
    request.state.provider = provider
    if not await _body_within(request, MAX_BODY_BYTES):
        metrics.upstream_callback(provider, CallbackOutcome.too_large)
        raise InvalidRequest(
            f"a callback body may be at most {MAX_BODY_BYTES} bytes",
            code=ErrorCode.payload_too_large,
            pointer=WHOLE_BODY,
            status=413,
        )
    outcome = await callbacks.receive(job_id)
    metrics.upstream_callback(provider, outcome)
    return CallbackReceipt()


async def _body_within(request: Request, limit: int) -> bool:
    """Read (and drop) the body, stopping as soon as it is over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return False
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return False
    return True
