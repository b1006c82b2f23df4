"""The committed OpenAPI document is exactly what the app serves."""

from __future__ import annotations

import json
from pathlib import Path

from app.config import Settings
from app.main import create_app

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def served() -> dict[str, object]:
    spec: dict[str, object] = create_app(Settings(sandbox=False)).openapi()
    return spec


def test_committed_document_equals_served() -> None:
    assert json.loads(COMMITTED.read_text()) == served(), "run `make openapi` and commit"


def test_operation_ids_are_unique_and_every_v1_route_documents_problems() -> None:
    paths = served()["paths"]
    assert isinstance(paths, dict)
    ids = []
    for path, operations in paths.items():
        for operation in operations.values():
            ids.append(operation["operationId"])
            if path.startswith("/v1/"):
                for status in ("401", "422"):
                    content = operation["responses"][status]["content"]
                    assert "application/problem+json" in content, (path, status)
    assert len(ids) == len(set(ids))
    assert "image_remove_background" in ids and "get_job" in ids
