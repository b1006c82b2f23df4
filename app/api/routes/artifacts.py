"""Serving stored outputs from signed, expiring URLs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from app.api.deps import BlobsDep, FilesDep, SignerDep
from app.api.problems import PROBLEM_RESPONSES
from app.blobs import LocalBlobStore
from app.domain.errors import NotFound

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"], responses=PROBLEM_RESPONSES)


@router.get(
    "/{artifact_id}",
    name="get_artifact",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The bytes"}},
)
async def get_artifact(
    artifact_id: str,
    signer: SignerDep,
    files: FilesDep,
    blobs: BlobsDep,
    expires: Annotated[int, Query(description="From the job's signed artifact URL.")],
    sig: Annotated[str, Query(description="From the job's signed artifact URL.")],
) -> Response:
    """An output's bytes. The URL in the job is the credential: signed and expiring."""
    path = f"/v1/artifacts/{artifact_id}"
    if not artifact_id.startswith("art_") or not signer.verify(path, expires, sig):
        raise NotFound("artifact", artifact_id)
    meta = await files.artifact(artifact_id)
    if meta is None:
        raise NotFound("artifact", artifact_id)
    return serve_blob(blobs, meta.id, meta.content_type, "artifact")


def serve_blob(blobs: LocalBlobStore, blob_id: str, content_type: str, what: str) -> Response:
    path = blobs.local_path(blob_id)
    if not path.exists():
        raise NotFound(what, blob_id)
    return FileResponse(
        path, media_type=content_type, headers={"Cache-Control": "private, max-age=3600"}
    )
