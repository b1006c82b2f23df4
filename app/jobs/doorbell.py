"""A process's doorbell for its worker: rung when a job becomes due in this process (the API
created it, a step ended), so that an idle worker here claims it at once instead of at its
next look at the queue. Other processes' workers find the job at their next look."""

from __future__ import annotations

import asyncio
from contextlib import suppress


class Doorbell:
    def __init__(self) -> None:
        self._rung = asyncio.Event()

    def ring(self) -> None:
        self._rung.set()

    async def wait(self, timeout_s: float) -> None:
        """Until the bell rings or ``timeout_s`` passes; a ring that came before counts."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._rung.wait(), timeout_s)
        self._rung.clear()
