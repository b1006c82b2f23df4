"""The imagepipeline adapter (being written: no bindings yet)."""

from __future__ import annotations

from typing import ClassVar

from app.jobs.operations import Operation
from app.providers.base import Adapter, Binding, Call, SubmitResult


class ImagePipelineAdapter(Adapter):
    name = "imagepipeline"
    bindings: ClassVar[dict[Operation, Binding]] = {}

    async def submit(self, call: Call) -> SubmitResult:
        raise NotImplementedError
