"""Keeping what an upstream delivered: each output file stored as an artifact of the job."""

from __future__ import annotations

import asyncio
import io

from PIL import Image, UnidentifiedImageError

from app.blobs import BlobStore
from app.domain.models import Artifact, JobOutput, new_artifact_id
from app.jobs.probe import duration_s
from app.providers.base import OutputFile, Succeeded
from app.store.files import BlobMeta, FileIndex


class Outputs:
    def __init__(self, blobs: BlobStore, files: FileIndex) -> None:
        self.blobs = blobs
        self.files = files

    async def store(self, tenant: str, result: Succeeded) -> JobOutput:
        artifacts = [await self._store_file(tenant, f) for f in result.files]
        return JobOutput(artifacts=artifacts, data=result.data)

    async def _store_file(self, tenant: str, output: OutputFile) -> Artifact:
        artifact_id = new_artifact_id()
        width, height = _image_size(output)
        meta = BlobMeta(
            id=artifact_id,
            tenant=tenant,
            content_type=output.content_type,
            size=len(output.content),
            width=width,
            height=height,
        )
        await asyncio.gather(
            self.blobs.put(artifact_id, output.content), self.files.add_artifact(meta)
        )
        return Artifact(
            id=artifact_id,
            url="",  # signed on every read (JobRenderer), since signatures expire
            content_type=output.content_type,
            bytes=len(output.content),
            width=width,
            height=height,
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
