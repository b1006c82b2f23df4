"""A request's media inputs (``Params.media``) are the fields pydantic takes a media input for."""

from __future__ import annotations

from typing import Any, cast

import pytest
from pydantic import TypeAdapter, ValidationError

from app.domain.media import MediaInput
from app.domain.operations import PARAMS, Operation, Params

SAMPLE = {"url": "https://example.com/a.png"}


def _annotation(params: type[Params], name: str) -> type[Any]:
    """A field's annotation (``FieldInfo.annotation``: set on every field of a model)."""
    return cast(type[Any], params.model_fields[name].annotation)


def _takes_media(params: type[Params], name: str) -> bool:
    """Whether pydantic validates a media input's JSON into a ``MediaInput`` for this field."""
    try:
        value = TypeAdapter(_annotation(params, name)).validate_python(SAMPLE)
    except ValidationError:
        return False
    return isinstance(value, MediaInput)


@pytest.mark.parametrize("operation", list(Operation), ids=str)
def test_media_names_every_media_input_given_and_nothing_else(operation: Operation) -> None:
    params = PARAMS[operation]
    media_names = {name for name in params.model_fields if _takes_media(params, name)}
    assert set(params.media_fields) == media_names

    all_given = params.model_construct(
        **{
            name: TypeAdapter(_annotation(params, name)).validate_python(SAMPLE)
            for name in media_names
        }
    )
    assert set(all_given.media()) == media_names
    assert all(isinstance(v, MediaInput) for v in all_given.media().values())
    assert {name: v.kind for name, v in all_given.media().items()} == params.media_fields

    none_given = params.model_construct(**{name: None for name in media_names})
    assert none_given.media() == {}


def test_an_operation_with_media_has_them_found() -> None:
    """Guards the test above against finding no media anywhere."""
    assert PARAMS[Operation.image_swap_face].media_fields
    assert not PARAMS[Operation.image_generate].media_fields
