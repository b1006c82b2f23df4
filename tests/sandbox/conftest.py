"""The emulators in this process, as the sandbox tests call them.

``sandbox`` is every emulator mounted as the sandbox app, called through ASGI at ``BASE``, with
the module's ``sandbox_timing`` (a module overrides that fixture to run its jobs faster or
its answers slower). ``clock`` is a clock the test moves, for the emulator the module tests
(the module's ``emulator``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.sandbox.timing import SandboxTiming
from tests.utils.clock import Clock
from tests.utils.sandbox import sandbox_app

BASE = "http://sandbox.test"


@pytest.fixture
def sandbox_timing() -> SandboxTiming:
    return SandboxTiming()


@pytest.fixture
async def sandbox(sandbox_timing: SandboxTiming) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox_app(sandbox_timing))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
def clock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(request.module.emulator, "_now", fake)
    return fake
