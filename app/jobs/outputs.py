"""Keeping what an upstream delivered: each output file stored as an artifact of the job,
under the tenant's storage quota (``jobs/storage.py``)."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from app.domain.models import Artifact, JobOutput, new_artifact_id
from app.jobs.probe import duration_s
from app.jobs.storage import Storage
from app.providers.base import OutputFile, Succeeded
from app.store.files import BlobMeta


class Outputs:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def store(self, tenant: str, result: Succeeded) -> JobOutput:
        """Store every output file, or none (``StorageQuotaExceeded`` past the quota)."""
        metas = [_meta(tenant, output) for output in result.files]
        items = [(meta, out.content) for meta, out in zip(metas, result.files, strict=True)]
        await self.storage.store_outputs(tenant, items)
        artifacts = [_artifact(m, out) for m, out in zip(metas, result.files, strict=True)]
        return JobOutput(artifacts=artifacts, data=result.data)


def _meta(tenant: str, output: OutputFile) -> BlobMeta:
    width, height = _image_size(output)
    return BlobMeta(
        id=new_artifact_id(),
        tenant=tenant,
        content_type=output.content_type,
        size=len(output.content),
        width=width,
        height=height,
        upstream=output.upstream,
    )


def _artifact(meta: BlobMeta, output: OutputFile) -> Artifact:
    return Artifact(
        id=meta.id,
        url="",  # signed on every read (JobRenderer), since signatures expire
        content_type=output.content_type,
        bytes=len(output.content),
        width=meta.width,
        height=meta.height,
        duration_s=duration_s(output.content, output.content_type),
    )


def _image_size(output: OutputFile) -> tuple[int | None, int | None]:
    if not output.content_type.startswith("image/"):
        return None, None
    try:
        with Image.open(io.BytesIO(output.content)) as img:
            return img.width, img.height
    except (UnidentifiedImageError, OSError):
        return None, None
