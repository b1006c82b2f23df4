"""What the gateway offers: operations, providers, styles and voices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.deps import CatalogDep, TenantDep
from app.api.operation_ids import operation_id
from app.api.problems import PROBLEM_RESPONSES
from app.domain.operations import Operation
from app.jobs.catalog import OperationInfo, ProviderInfo, StylePage, VoiceInfo

router = APIRouter(
    generate_unique_id_function=operation_id,
    prefix="/v1",
    tags=["catalog"],
    responses=PROBLEM_RESPONSES,
)


class OperationList(BaseModel):
    data: list[OperationInfo]
    next_cursor: str | None = None


class CatalogProviderList(BaseModel):
    data: list[ProviderInfo]
    next_cursor: str | None = None


class VoiceList(BaseModel):
    data: list[VoiceInfo]
    next_cursor: str | None = None


@router.get("/operations", name="list_operations")
async def list_operations(_tenant: TenantDep, catalog: CatalogDep) -> OperationList:
    """Every operation with the providers that run it, their parameters and credit prices."""
    return OperationList(data=await catalog.operations())


@router.get("/providers", name="list_providers")
async def list_providers(_tenant: TenantDep, catalog: CatalogDep) -> CatalogProviderList:
    """The providers the gateway is configured with and what each runs."""
    return CatalogProviderList(data=await catalog.provider_list())


@router.get("/styles", name="list_styles")
async def list_styles(
    _tenant: TenantDep,
    catalog: CatalogDep,
    operation: Operation = Operation.image_hairstyle,
    variant: Annotated[
        str | None, Query(description="For image.hairstyle: style, wig, extension, bangs, volume.")
    ] = None,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> StylePage:
    """Predefined styles (`style_id` values) of a styled operation, a page at a time."""
    return await catalog.styles(operation, variant, page_size, cursor)


@router.get("/voices", name="list_voices")
async def list_voices(_tenant: TenantDep, catalog: CatalogDep) -> VoiceList:
    """Voices for `audio.speech`."""
    return VoiceList(data=await catalog.voices())
