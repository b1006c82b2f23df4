"""An in-memory MediaSource for adapter tests: uploaded files from a dict, URLs passed through
(their bytes, where a test gives them, from a second dict), published media kept in a list."""

from __future__ import annotations

from app.domain.media import MediaInput
from app.providers.base import Media

PUBLISHED = "https://gw.test/v1/files/file_published{n}/content"


class DictMedia:
    def __init__(self, files: dict[str, Media], urls: dict[str, Media] | None = None) -> None:
        self.files = files
        self.urls = urls or {}
        self.published: list[Media] = []

    async def read(self, ref: MediaInput) -> Media:
        if ref.url is not None:
            return self.urls[ref.url]
        stored = ref.file_id or ref.artifact_id
        assert stored is not None
        return self.files[stored]

    def public_url(self, ref: MediaInput) -> str:
        if ref.url is not None:
            return ref.url
        return f"https://gw.test/v1/files/{ref.file_id}/content"

    async def publish(self, media: Media) -> str:
        self.published.append(media)
        return PUBLISHED.format(n=len(self.published))
