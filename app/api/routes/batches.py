"""Batches: many requests of one operation, run as ordinary jobs and followed as one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, WithJsonSchema

from app.api.deps import BatchesDep, IdempotencyDep, IdempotencyKeyDep, TenantDep
from app.api.idempotency import idempotent
from app.api.operation_ids import operation_id
from app.api.problems import PROBLEM_RESPONSES
from app.api.routes.operations import request_schema_name
from app.domain.batches import MAX_ITEMS, Batch, BatchItemPage, new_batch_id
from app.domain.json_values import check_metadata
from app.domain.operations import Operation
from app.jobs.batches import parse_item
from app.store.idempotency import Bound

router = APIRouter(
    generate_unique_id_function=operation_id,
    prefix="/v1/batches",
    tags=["batches"],
    responses=PROBLEM_RESPONSES,
)


BatchItemBody = Annotated[
    dict[str, object],
    WithJsonSchema(
        {
            "oneOf": [
                {"$ref": f"#/components/schemas/{request_schema_name(op)}"} for op in Operation
            ],
            "description": "A request body of the batch's `operation`, as its route takes it.",
        }
    ),
]


class BatchRequest(BaseModel):
    model_config = {"extra": "forbid"}

    operation: Operation
    items: list[BatchItemBody] = Field(
        min_length=1,
        max_length=MAX_ITEMS,
        description="Request bodies of the operation, as its own route takes them; media by "
        "`url` or `file_id` (inline `data` within the body limit).",
    )
    callback_url: str | None = Field(
        default=None, max_length=2048, description="Gets one `batch.completed` webhook."
    )
    metadata: dict[str, object] = Field(default_factory=dict)


def _check_items(body: BatchRequest) -> None:
    """Every item valid for the operation, or 422 pointing into the items that are not."""
    errors: list[dict[str, object]] = []
    for index, item in enumerate(body.items):
        try:
            _, envelope = parse_item(body.operation, item)
            check_metadata(envelope.metadata, f"/items/{index}/metadata")
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                errors.append({**error, "loc": ("body", "items", index, *error["loc"])})
        if len(errors) >= 50:
            break
    if errors:
        raise RequestValidationError(errors)


@router.post("", name="create_batch", status_code=202, response_model=Batch)
async def create_batch(
    request: Request,
    body: BatchRequest,
    tenant: TenantDep,
    batches: BatchesDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> Response:
    _check_items(body)
    check_metadata(body.metadata)

    async def create(bound: Bound | None) -> Response:
        batch = await batches.create(
            tenant,
            body.operation,
            body.items,
            callback_url=body.callback_url,
            metadata=body.metadata,
            bound=bound,
        )
        return Response(
            batch.model_dump_json(),
            status_code=202,
            media_type="application/json",
            headers={"Location": batch.links.self},
        )

    payload = await request.body()
    return await idempotent(
        request, idempotency_key, idempotency, tenant, payload, create, new_id=new_batch_id
    )


@router.get("/{batch_id}", name="get_batch", response_model=Batch)
async def get_batch(batch_id: str, tenant: TenantDep, batches: BatchesDep) -> Batch:
    return await batches.get(tenant, batch_id)


@router.get("/{batch_id}/jobs", name="list_batch_jobs", response_model=BatchItemPage)
async def list_batch_jobs(
    batch_id: str,
    tenant: TenantDep,
    batches: BatchesDep,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,6}$", description="`next_cursor` of the last page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> BatchItemPage:
    return await batches.items(tenant, batch_id, cursor=cursor, limit=limit)


@router.post("/{batch_id}/cancel", name="cancel_batch", response_model=Batch)
async def cancel_batch(batch_id: str, tenant: TenantDep, batches: BatchesDep) -> Batch:
    return await batches.cancel(tenant, batch_id)
