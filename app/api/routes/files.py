"""Uploading media (multipart) for later jobs, and the signed URL upstreams fetch it from."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from app.api.blob_responses import serve_signed
from app.api.deps import (
    BlobsDep,
    FilesDep,
    IdempotencyDep,
    IdempotencyKeyDep,
    JobsDep,
    SettingsDep,
    SignerDep,
    TenantDep,
)
from app.api.idempotency import idempotent
from app.api.operation_ids import operation_id
from app.api.problems import PROBLEM_RESPONSES
from app.domain.models import new_file_id
from app.jobs.intake import check_media
from app.store.idempotency import Bound

router = APIRouter(
    generate_unique_id_function=operation_id,
    prefix="/v1/files",
    tags=["files"],
    responses=PROBLEM_RESPONSES,
)


class FileObject(BaseModel):
    id: str
    object: str = "file"
    content_type: str
    bytes: int
    width: int | None = None
    height: int | None = None


@router.post("", name="upload_file", status_code=201, response_model=FileObject)
async def upload_file(
    request: Request,
    tenant: TenantDep,
    settings: SettingsDep,
    jobs: JobsDep,
    idempotency: IdempotencyDep,
    file: Annotated[
        UploadFile,
        File(
            description="An image (PNG, JPEG, WEBP), video (MP4, MOV, WEBM, AVI, MPEG) or "
            "audio file (WAV, MP3, OGG, FLAC, M4A), at most 10 MB (the media limit; a larger "
            "video a provider takes goes inline or by URL to its operation's route)."
        ),
    ],
    idempotency_key: IdempotencyKeyDep = None,
) -> Response:
    limit = settings.max_media_bytes
    content = await file.read(limit + 1)
    image = check_media(content, None, "/file", limit)

    async def store(bound: Bound | None) -> Response:
        meta = await jobs.store_file(tenant, image, "/file", bound)
        created = FileObject(
            id=meta.id,
            content_type=meta.content_type,
            bytes=meta.size,
            width=meta.width,
            height=meta.height,
        )
        return Response(created.model_dump_json(), 201, media_type="application/json")

    return await idempotent(
        request, idempotency_key, idempotency, tenant, content, store, new_id=new_file_id
    )


@router.get("/{file_id}/content", name="get_file_content", include_in_schema=False)
async def get_file_content(
    request: Request,
    file_id: str,
    signer: SignerDep,
    files: FilesDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    expires: Annotated[int, Query()],
    sig: Annotated[str, Query()],
) -> Response:
    """The bytes of an upload, for an upstream holding a signed URL."""
    return await serve_signed(
        request,
        path=f"/v1/files/{file_id}/content",
        what="file",
        blob_id=file_id,
        prefix="file_",
        lookup=files.file,
        expires=expires,
        sig=sig,
        signer=signer,
        blobs=blobs,
        settings=settings,
    )
