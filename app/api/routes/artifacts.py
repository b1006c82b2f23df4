"""Serving stored outputs from signed, expiring URLs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.blob_responses import serve_signed
from app.api.deps import BlobsDep, FilesDep, Services, SettingsDep, SignerDep
from app.api.operation_ids import operation_id
from app.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES, Problem
from app.blobs import BlobStore
from app.config import Settings
from app.signing import UrlSigner
from app.store.files import FileIndex

router = APIRouter(
    generate_unique_id_function=operation_id,
    prefix="/v1/artifacts",
    tags=["artifacts"],
    responses=PROBLEM_RESPONSES,
)


@router.get(
    "/{artifact_id}",
    name="get_artifact",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The bytes"},
        206: {
            "content": {"application/octet-stream": {}},
            "description": "The byte range a `Range: bytes=…` header asked for",
        },
        307: {
            "description": "With MEDIAGATE_ARTIFACT_REDIRECT: a presigned URL of the object "
            "store to fetch the bytes from (it honours Range too)"
        },
        416: {
            "model": Problem,
            "content": {PROBLEM_JSON: {}},
            "description": "The range starts past the end (`range_not_satisfiable`)",
        },
    },
)
async def get_artifact(
    request: Request,
    artifact_id: str,
    signer: SignerDep,
    files: FilesDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    expires: Annotated[int, Query(description="From the job's signed artifact URL.")],
    sig: Annotated[str, Query(description="From the job's signed artifact URL.")],
) -> Response:
    """An output's bytes. The URL in the job is the credential: signed and expiring.
    A single `Range: bytes=…` is answered with 206 and those bytes."""
    return await _serve(request, artifact_id, expires, sig, signer, files, blobs, settings)


async def artifact_response(
    request: Request, artifact_id: str, expires: int, sig: str, services: Services
) -> Response:
    """The route's answer, for the fast lane (``app.api.fast_routes``)."""
    return await _serve(
        request,
        artifact_id,
        expires,
        sig,
        services.signer,
        services.files,
        services.blobs,
        services.settings,
    )


async def _serve(
    request: Request,
    artifact_id: str,
    expires: int,
    sig: str,
    signer: UrlSigner,
    files: FileIndex,
    blobs: BlobStore,
    settings: Settings,
) -> Response:
    return await serve_signed(
        request,
        path=f"/v1/artifacts/{artifact_id}",
        what="artifact",
        blob_id=artifact_id,
        prefix="art_",
        lookup=files.artifact,
        expires=expires,
        sig=sig,
        signer=signer,
        blobs=blobs,
        settings=settings,
    )
