"""Media a tenant gives the gateway, kept as files: uploads (``POST /v1/files``) and a job's
inline inputs, stored under the tenant's storage quota (``Storage.store_files``) and
remembered in this process for the job that reads them next (``StoredMedia.remember``)."""

from __future__ import annotations

from app.domain.media import MediaInput
from app.domain.models import new_file_id
from app.domain.operations import Params
from app.jobs.intake import CheckedMedia
from app.jobs.media_source import StoredMedia
from app.jobs.storage import Storage
from app.providers.base import Media
from app.store.files import BlobMeta
from app.store.tenants import Tenant


class InputFiles:
    def __init__(self, storage: Storage, media: StoredMedia) -> None:
        self.storage = storage
        self.media = media

    async def store_inline(
        self, tenant: Tenant, params: Params, checked: dict[str, CheckedMedia]
    ) -> tuple[Params, list[BlobMeta]]:
        """Store checked inline media as files; their references replace the data. All of
        them or none (413 ``storage_quota_exceeded`` at the first one's pointer). Returns the
        parameters and the files stored, for :meth:`discard` when no job takes them."""
        if not checked:
            return params, []
        metas = {name: _file_meta(tenant, image) for name, image in checked.items()}
        await self.storage.store_files(
            tenant.id, [(metas[n], image.content, f"/{n}/data") for n, image in checked.items()]
        )
        replaced: dict[str, MediaInput] = {}
        for name, image in checked.items():
            self.media.remember(metas[name].id, Media(image.content, image.content_type))
            replaced[name] = type(params.media()[name])(file_id=metas[name].id)
        return params.model_copy(update=replaced), list(metas.values())

    async def discard(self, tenant: Tenant, stored: list[BlobMeta]) -> None:
        """Delete inline inputs :meth:`store_inline` stored for a job that was not made (the
        creation refused it, or found it made by an earlier attempt of the same request):
        nothing refers to them. Never raises; one the storage cannot delete now is deleted
        when its retention ends (``Storage.delete_files``)."""
        if not stored:
            return
        for meta in stored:
            self.media.forget(meta.id)
        await self.storage.delete_files(tenant.id, stored)

    async def store_upload(
        self, tenant: Tenant, image: CheckedMedia, pointer: str, file_id: str | None = None
    ) -> BlobMeta:
        """Store an upload under the tenant's storage quota (413 storage_quota_exceeded), as
        ``file_id`` when given (the id its ``Idempotency-Key`` bound): an earlier attempt that
        stored it already is not counted again, its bytes are written again."""
        meta = _file_meta(tenant, image, file_id)
        await self.storage.store_files(tenant.id, [(meta, image.content, pointer)])
        self.media.remember(meta.id, Media(image.content, image.content_type))
        return meta


def _file_meta(tenant: Tenant, image: CheckedMedia, file_id: str | None = None) -> BlobMeta:
    return BlobMeta(
        id=file_id or new_file_id(),
        tenant=tenant.id,
        content_type=image.content_type,
        size=len(image.content),
        width=image.width,
        height=image.height,
    )
