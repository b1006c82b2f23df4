"""The request metrics layer (``app.api.middleware``): the request id it echoes and logs."""

from __future__ import annotations

import uuid

import pytest

from app.api.middleware import _request_id, new_request_id


@pytest.mark.parametrize("given", [b"req-1.A_b", b"x" * 64])
def test_a_sane_request_id_is_kept(given: bytes) -> None:
    assert _request_id({"headers": [(b"x-request-id", given)]}) == given.decode()


@pytest.mark.parametrize("given", [b"req-1\n", b"\nreq-1", b"req 1", b"x" * 65, b"\xe9"])
def test_any_other_request_id_is_replaced(given: bytes) -> None:
    """A value with anything outside the allowed characters (a trailing newline slipped past
    ``$``) is never echoed in a header nor written to the log: a fresh id stands in."""
    replaced = _request_id({"headers": [(b"x-request-id", given)]})
    assert replaced != given.decode("latin-1")
    assert len(replaced) == 32 and replaced.isalnum()


def test_a_fresh_request_id_is_a_random_uuid() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for given in ids:
        parsed = uuid.UUID(hex=given)
        assert parsed.hex == given
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
