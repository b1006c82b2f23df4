"""An enumeration pydantic writes as its text: the same JSON, dumps and schema as a StrEnum's."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError, create_model

from app.domain.enums import TextEnum
from app.domain.models import JobRecord


class Plain(StrEnum):
    dotted = "job.succeeded"
    plain = "queued"


class Text(TextEnum):
    dotted = "job.succeeded"
    plain = "queued"


def _model(enum: type[StrEnum]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "one": (enum, ...),
        "many": (list[enum], ...),  # type: ignore[valid-type]
        "maybe": (enum | None, None),
        "keyed": (dict[enum, int], {}),  # type: ignore[valid-type]
    }
    return create_model("Shape", **fields)


VALUES = {"one": "job.succeeded", "many": ["queued", "job.succeeded"], "keyed": {"queued": 1}}


def test_written_as_a_str_enum_is() -> None:
    plain, text = _model(Plain).model_validate(VALUES), _model(Text).model_validate(VALUES)
    assert text.model_dump_json() == plain.model_dump_json()
    assert text.model_dump(mode="json") == plain.model_dump(mode="json")
    dumped = text.model_dump()
    assert dumped["one"] is Text.dotted and dumped["many"] == [Text.plain, Text.dotted]
    assert type(text.model_dump(mode="json")["one"]) is str


@pytest.mark.parametrize("mode", ["validation", "serialization"])
def test_its_schema_is_a_str_enums(mode: Any) -> None:
    plain = json.dumps(_model(Plain).model_json_schema(mode=mode))
    text = json.dumps(_model(Text).model_json_schema(mode=mode))
    assert text == plain.replace("Plain", "Text")


def test_validated_as_a_str_enum_is() -> None:
    shape = _model(Text)
    assert shape.model_validate_json(json.dumps(VALUES)).one is Text.dotted  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        shape.model_validate({**VALUES, "one": "succeeded"})


def test_a_job_record_reads_back_as_written() -> None:
    record = {
        "job": {
            "id": "job_1",
            "operation": "image.generate",
            "status": "failed",
            "attempts": [{"provider": "p", "status": "failed", "charge_reason": "unanswered"}],
            "input": {},
            "error": {"code": "upstream_timeout", "message": "late"},
            "created_at": "2026-01-02T03:04:05Z",
            "links": {"self": "/s", "cancel": "/c", "events": "/e"},
        },
        "tenant_id": "t",
        "params": {},
        "plan": ["p"],
    }
    written = JobRecord.model_validate(record).model_dump_json()
    assert JobRecord.model_validate_json(written).model_dump_json() == written
    assert json.loads(written)["job"]["error"]["code"] == "upstream_timeout"
    assert json.loads(written)["webhook_events"] == ["job.succeeded", "job.failed", "job.canceled"]
