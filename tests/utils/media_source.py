"""An in-memory MediaSource for adapter tests: uploaded files from a dict, URLs passed through."""

from __future__ import annotations

from app.domain.media import MediaInput
from app.providers.base import Media


class DictMedia:
    def __init__(self, files: dict[str, Media]) -> None:
        self.files = files

    async def read(self, ref: MediaInput) -> Media:
        stored = ref.file_id or ref.artifact_id
        assert stored is not None
        return self.files[stored]

    def public_url(self, ref: MediaInput) -> str:
        assert ref.url is not None
        return ref.url
