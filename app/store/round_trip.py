"""Commands of several stores sent to Redis together: one round trip instead of one each.

Not a transaction: Redis runs the commands one after another as if sent alone (a script stays
atomic on its own), only the network wait is shared. Each store queues its part and gets back
a function that reads its result once :meth:`RoundTrip.run` has returned.

Scripts go as ``EVALSHA``; one Redis does not know yet (after a restart, or a ``SCRIPT
FLUSH``) answers ``NOSCRIPT`` without having run, and is then run alone, loading it. redis-py's
own pipelined scripts would instead ask ``SCRIPT EXISTS`` before every pipeline: a round trip
more, each time.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError


class RoundTrip:
    def __init__(self, redis: Redis) -> None:
        self._pipe = redis.pipeline(transaction=False)
        self._scripts: list[tuple[int, AsyncScript, list[Any], list[Any]]] = []
        self._results: list[Any] | None = None

    def script(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> int:
        """Queue a script; its result will be ``result(index)``."""
        index = len(self._pipe.command_stack)
        self._pipe.evalsha(script.sha, len(keys), *keys, *args)
        self._scripts.append((index, script, keys, args))
        return index

    def command(self, *args: Any) -> int:
        """Queue a command (``"HMGET", key, field…``); its result will be ``result(index)``."""
        index = len(self._pipe.command_stack)
        self._pipe.execute_command(*args)
        return index

    async def run(self) -> None:
        async with self._pipe as pipe:
            results: list[Any] = await pipe.execute(raise_on_error=False)
        for index, script, keys, args in self._scripts:
            if isinstance(results[index], NoScriptError):
                results[index] = await script(keys=keys, args=args)
        self._results = results

    def result(self, index: int) -> Any:
        """A queued command's answer; its error raised, as the command alone would raise it."""
        assert self._results is not None, "RoundTrip.run() first"
        value = self._results[index]
        if isinstance(value, Exception):
            raise value
        return value
