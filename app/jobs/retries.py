"""Trying a step again after a store error, where giving it up would cost more than waiting.

Writing what an upstream delivered (its outputs, to the disk or the object store) and the steps
that follow a job's terminal save (giving its upstream slot back, remembering its result) meet
the same errors: a Redis blip or failover, a full disk, an object store that answers 500
(``BlobStoreError``, an ``OSError``). Each is tried again with a doubling pause for a while
(:func:`tried_again`); the caller decides what giving up means.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_PAUSE_S = 0.05
"""The first pause before a step that met a store error is tried again (doubled after each)."""


STORE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
"""What a store that is away a moment raises: Redis, the disk, the object store."""


async def tried_again(
    action: Callable[[], Awaitable[T]],
    *,
    within_s: float,
    what: str,
    about: str,
    errors: tuple[type[Exception], ...] = STORE_ERRORS,
) -> T:
    """``action()``, tried again after one of ``errors`` with a doubling pause (from
    ``FIRST_PAUSE_S``, at most a sixth of ``within_s``) for up to ``within_s`` after the first
    error; then that error is raised (at once when ``within_s`` is 0). Any other error is raised
    as it comes. ``what`` (the step) and ``about`` (a job's or a blob's id) name it in the log;
    nothing is done with them unless an error comes."""
    give_up: float | None = None
    pause = FIRST_PAUSE_S
    while True:
        try:
            return await action()
        except errors as exc:
            now = asyncio.get_running_loop().time()
            if give_up is None:
                give_up = now + within_s
            if now + pause > give_up:
                raise
            log.warning("%s: %s failed (%s); again in %.2f s", about, what, exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, within_s / 6)
