"""The sandbox app as tests build it: controls behind the test admin token, emulators allowed
to fetch from loopback (where tests serve their input files)."""

from __future__ import annotations

from fastapi import FastAPI

from app.sandbox.app import create_sandbox_app
from app.sandbox.fetch import SandboxAccess
from app.sandbox.timing import SandboxTiming
from tests.utils.processes import ADMIN_TOKEN

CONTROL = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
"""Headers of a call to ``/_sandbox/faults`` or ``/_sandbox/stats``."""

TEST_ACCESS = SandboxAccess(admin_token=ADMIN_TOKEN, allowed=("127.0.0.1/32",))


def sandbox_app(timing: SandboxTiming | None = None) -> FastAPI:
    return create_sandbox_app(timing, TEST_ACCESS)
