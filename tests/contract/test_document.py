"""The OpenAPI document, walked: ids, errors, response schemas, examples, typed bodies.

Checks the document the app serves (``tests/api/test_openapi.py`` checks the committed file
equals it), so a route added anywhere is held to the same contract at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from app.api.problems import PROBLEM_JSON
from app.config import Settings
from app.domain.operations import PARAMS, ROUTES
from app.main import create_app

PROBLEM_REF = "#/components/schemas/Problem"
READABLE_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

FREE_FORM = {
    "metadata": "the client's own key/values, echoed back",
    "Job.input": "the operation's parameters: one of the *Request models, minus the envelope",
    "JobOutput.data": "structured results (keywords, captions, faces, scores) by operation",
}
"""Objects without a schema. ``metadata`` is free-form by design; the other two have models
(the params models; per-operation result shapes) and are known offenders, kept as they are
until ``app/domain/models.py`` types them."""

Spec = dict[str, Any]


@pytest.fixture(scope="module")
def spec() -> Spec:
    document: Spec = create_app(Settings(sandbox=False)).openapi()
    return document


def operations(spec: Spec) -> Iterator[tuple[str, str, Spec]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_every_operation_has_a_readable_unique_id(spec: Spec) -> None:
    ids = [op.get("operationId") for _, _, op in operations(spec)]
    assert all(isinstance(i, str) and READABLE_ID.match(i) for i in ids), ids
    assert len(ids) == len(set(ids))


def test_every_operation_documents_problem_json_errors(spec: Spec) -> None:
    for method, path, op in operations(spec):
        responses: dict[str, Spec] = op["responses"]
        errors = {s: r for s, r in responses.items() if s.startswith("4") or s == "default"}
        assert "default" in errors, (method, path)
        for status, response in errors.items():
            content = response.get("content", {})
            assert list(content) == [PROBLEM_JSON], (method, path, status)
            assert content[PROBLEM_JSON]["schema"] == {"$ref": PROBLEM_REF}, (method, path, status)
        if op.get("security"):
            assert "401" in errors, (method, path)
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in errors, (method, path)


def test_every_success_response_has_a_schema(spec: Spec) -> None:
    for method, path, op in operations(spec):
        successes = {s: r for s, r in op["responses"].items() if s.startswith("2")}
        assert successes, (method, path)
        for status, response in successes.items():
            if status == "204":
                assert not response.get("content"), (method, path)
                continue
            content: dict[str, Spec] = response.get("content", {})
            assert content, (method, path, status)
            for media_type, body in content.items():
                assert body.get("schema"), (method, path, status, media_type)


def test_every_job_operation_shows_valid_request_examples(spec: Spec) -> None:
    for operation, params in PARAMS.items():
        post = spec["paths"][ROUTES[operation]]["post"]
        examples: dict[str, Spec] = post["requestBody"]["content"]["application/json"]["examples"]
        assert examples, operation
        for name, example in examples.items():
            assert example["summary"], (operation, name)
            params.model_validate(example["value"])  # raises on an example that drifted


def test_schema_names_are_plain(spec: Spec) -> None:
    names = list(spec["components"]["schemas"])
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", n) and "__" not in n for n in names), names


def untyped_objects(node: Any, where: str) -> Iterator[str]:
    """Places whose schema is an object with no properties and any values."""
    if isinstance(node, dict):
        if (
            node.get("type") == "object"
            and "properties" not in node
            and node.get("additionalProperties", True) in (True, {})
        ):
            yield where
        for key, value in node.items():
            yield from untyped_objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from untyped_objects(value, f"{where}/{index}")


def test_no_untyped_object_beyond_the_known_free_form_ones(spec: Spec) -> None:
    found = set()
    for place in untyped_objects(spec, "#"):
        match = re.search(r"/components/schemas/(\w+)/properties/(\w+)$", place)
        assert match, f"untyped object outside a model property: {place}"
        model, prop = match.groups()
        found.add(prop if prop == "metadata" else f"{model}.{prop}")
    assert found <= set(FREE_FORM), found - set(FREE_FORM)
