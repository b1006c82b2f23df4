"""Perfect Corp emulator, the wire: refusals, rate windows, and the bodies and queries it reads.

A refusal is answered ``{"status", "error", "error_code"}`` with the same HTTP status; a body
or query the document does not allow is ``400 InvalidParameters``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.sandbox import perfectcorp_tasks as engine
from app.sandbox.perfectcorp_tasks import FEATURES, StoredFile, Work

OPTIONAL_REQUEST_ID = frozenset({"hair-ext", "hair-bang", "hair-vol"})
"""Features whose document marks ``request_id`` optional."""
MAX_PAGE_SIZE = 20

Listed = TypeVar("Listed", engine.Group, engine.Item)


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    params: dict[str, Any] | None = None


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file_sets: dict[str, list[str]] | None = None
    actions: list[_Action] = Field(min_length=1, max_length=1)
    output_ext: str | None = None


class TaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: int | None = Field(default=None, ge=0)
    payload: _Payload


class _FileEntry(BaseModel):
    content_type: str
    file_name: str = Field(min_length=1)


class FilesBody(BaseModel):
    files: list[_FileEntry] = Field(min_length=1, max_length=10)


class Refusal(Exception):
    def __init__(self, status: int, error: str, code: str) -> None:
        super().__init__(error)
        self.status, self.error, self.code = status, error, code


def invalid(error: str) -> Refusal:
    return Refusal(400, error, "InvalidParameters")


class Window:
    """A sliding window of request times."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def room(self, now: float, limit: int, span_s: float) -> bool:
        """Whether one more request at ``now`` stays within ``limit`` per ``span_s``."""
        while self.times and self.times[0] <= now - span_s:
            self.times.popleft()
        return len(self.times) < limit

    def admit(self, now: float, limit: int, span_s: float) -> bool:
        if not self.room(now, limit, span_s):
            return False
        self.times.append(now)
        return True


def read_task(
    raw: object, feature: str, find_file: Callable[[str], StoredFile | None]
) -> tuple[int | None, Work]:
    """A ``POST task/<feature>`` body: its ``request_id`` and the work it asks for."""
    try:
        body = TaskBody.model_validate(raw)
    except (ValueError, ValidationError) as exc:
        raise invalid("the body must be {request_id, payload: {actions: [one]}}") from exc
    if body.request_id is None and feature not in OPTIONAL_REQUEST_ID:
        raise invalid("request_id is required")
    spec, payload = FEATURES[feature], body.payload
    file_sets = payload.file_sets or {}
    if set(file_sets) != set(spec.file_sets):
        raise invalid(f"file_sets must hold {', '.join(spec.file_sets) or 'nothing'}")
    files: dict[str, list[StoredFile]] = {}
    for key, ids in file_sets.items():
        if len(ids) != 1:
            raise invalid(f"{key} takes exactly one file")
        stored = find_file(ids[0])
        if stored is None:
            raise invalid(f"file {ids[0]} does not exist")
        files[key] = [stored]
    params = payload.actions[0].params or {}
    allowed = {"style_group_id", "style_ids"} if spec.styled else set()
    allowed |= {"prompt"} if feature == "text-to-image" else set()
    allowed |= {"scale"} if feature == "enhance" else set()
    if extra := set(params) - allowed:
        raise invalid(f"unknown action params: {', '.join(sorted(extra))}")
    if spec.styled:
        style_ids = params.get("style_ids")
        if not (isinstance(style_ids, list) and len(style_ids) == 1) or not engine.find_style(
            feature, params.get("style_group_id"), style_ids[0]
        ):
            raise invalid("style_group_id and one of its style_ids are required")
    if feature == "text-to-image":
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise invalid("prompt is required")
    scale = params.get("scale") if feature == "enhance" else 1
    if type(scale) is not int or scale not in (1, 2, 4):
        raise invalid("scale is required: 1, 2 or 4")
    ext = payload.output_ext or spec.default_ext
    if ext not in spec.output_exts:
        raise invalid(f"output_ext {ext} is not supported")
    return body.request_id, Work(feature, files, ext, scale)


def page(query: Mapping[str, str], items: list[Listed]) -> tuple[list[Listed], str | None]:
    """``page_size`` (1–20, default 20) items from ``starting_token`` (an item's id)."""
    try:
        size = int(query.get("page_size", "20"))
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise invalid("page_size must be between 1 and 20")
    start = 0
    token = query.get("starting_token")
    if token:
        positions = {str(item.id): n for n, item in enumerate(items)}
        if token not in positions:
            raise invalid("starting_token is unknown")
        start = positions[token]
    page = items[start : start + size]
    following = items[start + size] if start + size < len(items) else None
    return page, str(following.id) if following else None
