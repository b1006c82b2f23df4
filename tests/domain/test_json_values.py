"""What the gateway stores of a client's JSON: refused with a pointer to the value, or kept."""

from __future__ import annotations

import math

import pytest

from app.domain.errors import InvalidRequest
from app.domain.json_values import check_metadata, check_storable


@pytest.mark.parametrize(
    ("value", "pointer"),
    [
        ({"a": [1, {"b": math.nan}]}, "/p/a/1/b"),
        ({"a": ("ok", math.inf)}, "/p/a/1"),
        ({"x/y": "lone \udc00"}, "/p/x~1y"),
        # not JSON as a whole (bytes, a set): walked all the same, the fault still found
        ({"raw": b"\x00", "n": -math.inf}, "/p/n"),
        ([{1, 2}, "\ud800"], "/p/1"),
    ],
)
def test_a_fault_is_found_where_it_is(value: object, pointer: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_storable(value, "/p")
    assert refused.value.errors[0].pointer == pointer


def test_a_fault_in_a_key_of_the_whole_body_points_at_the_whole_body() -> None:
    """A key is checked as a string of its container; the body's own keys, of the body as a
    whole: ``""`` (RFC 6901's pointer to the whole document; ``/`` names a key ``""``)."""
    with pytest.raises(InvalidRequest) as refused:
        check_storable({"lone \udc00": 1}, "")
    assert refused.value.errors[0].pointer == ""


@pytest.mark.parametrize(
    "value",
    [
        {"prompt": "é😀 a lighthouse", "n": 2, "scale": 1.5, "tags": ["a", None, True]},
        {"raw": b"\xff", "kinds": {"x", "y"}},  # not JSON, and nothing wrong in it
        {},
        [],
    ],
)
def test_values_with_nothing_wrong_pass(value: object) -> None:
    check_storable(value, "/p")


def test_empty_metadata_passes_and_a_bad_one_is_still_refused() -> None:
    check_metadata({})
    with pytest.raises(InvalidRequest) as refused:
        check_metadata({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}})
    assert refused.value.errors[0].pointer == "/metadata/a/b/c/d/e"
