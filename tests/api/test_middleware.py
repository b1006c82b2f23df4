"""The request metrics layer (``app.api.middleware``): the request id it echoes and logs."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from opentelemetry import trace

from app.api.middleware import _request_id, new_request_id
from app.config import SANDBOX_TENANT_KEY
from tests.utils.in_process import in_process_gateway


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


class _Provider:
    """A tracer provider someone configured for the process: FastAPI's layer, if it were on,
    would ask it for a tracer."""

    def __init__(self) -> None:
        self.asked = 0

    def get_tracer(self, *args: object, **kwargs: object) -> object:
        self.asked += 1
        raise AssertionError("FastAPI's telemetry layer traced a request")


async def test_fastapi_own_telemetry_stays_off(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway reports through its own metrics and log line; FastAPI's OpenTelemetry layer
    is off whatever providers the process has."""
    provider = _Provider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    async with in_process_gateway(redis_url, tmp_path, sandbox=True) as (_, client):
        answer = await client.post(
            "/v1/images/generate",
            json={"prompt": "a lighthouse", "provider": "imagepig"},
            headers={"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"},
        )
        assert answer.status_code == 202
        assert (await client.get("/healthz")).status_code == 200
    assert provider.asked == 0
