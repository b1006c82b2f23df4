"""The imagepipeline emulator (being written)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from app.sandbox.control import SandboxControl

if TYPE_CHECKING:
    from app.sandbox.app import SandboxTiming


def router(control: SandboxControl, timing: SandboxTiming) -> APIRouter:
    return APIRouter()
