"""Perfect Corp files: the record of what an attempt sent, inputs fit for a feature, outputs.

An attempt's record (file ids and ``request_id``) is what lets a resumed attempt send the very
same task again (see :mod:`app.providers.perfectcorp`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.providers.perfectcorp_wire import JPEG, PNG


@dataclass
class Submission:
    """What one attempt sent upstream: reused by a worker that resumes it."""

    feature: str
    file_ids: dict[str, str]
    request_id: int | None = None

    def dump(self) -> str:
        return json.dumps(
            {"feature": self.feature, "file_ids": self.file_ids, "request_id": self.request_id}
        )

    @classmethod
    def load(cls, raw: str | None) -> Submission | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            request_id = data["request_id"]
            record = cls(str(data["feature"]), dict(data["file_ids"]), request_id)
        except (ValueError, TypeError, KeyError):
            return None
        return record if request_id is None or isinstance(request_id, int) else None


def extension(content_type: str) -> str:
    return {JPEG: "jpg", "image/jpg": "jpg", PNG: "png"}.get(content_type, "bin")
