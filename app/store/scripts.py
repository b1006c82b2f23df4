"""The Lua scripts, loaded from ``lua/*.lua`` and registered once per Redis client.

A script is called by its SHA1 (``EVALSHA``) on a connection taken from the client's pool, and
loaded again when the server does not know it (``NOSCRIPT``: a primary promoted after a
failover, a ``SCRIPT FLUSH``), as redis-py's own ``AsyncScript`` does. :class:`Script` sends
the command on the connection itself rather than through the client's command layer, whose
per-call work (its retry wrapper, observability hooks, option handling) has nothing to do for
a script and cost about a fifth of each call's CPU (``docs/performance.md``). The
connection's own handling is unchanged: a read that fails or is interrupted closes the
connection (redis-py's ``read_response``), Sentinel's pool answers the current primary, and a
former primary answering ``READONLY`` drops its connections. Inside a pipeline a script is
queued through ``AsyncScript``.

Between calls the scripts keep a few connections out of the pool (:class:`HeldConnections`):
redis-py's blocking pool takes its condition and its lock and reports to its observability
hooks on every get and every release, about 14 µs a call against 1 µs for making a kept
connection ready with the pool's own ``ensure_connection`` (``docs/performance.md``).

The command is packed by hiredis in one call (redis-py encodes each argument in Python
first, then packs), and written as redis-py's ``send_packed_command`` writes it, without the
task its ``wait_for`` starts for every write: a write goes to the transport's buffer at once,
and only one that leaves more than ``DRAIN_ABOVE_BYTES`` there waits for the socket, within
the connection's timeout. Together about a third of a call's CPU (``docs/performance.md``).
The pool still hands out a connected connection (reconnecting one the server closed) and the
connection's health check runs as before; a connection without the stream this relies on (a
redis-py that keeps it elsewhere) is written to through ``send_packed_command``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import DataError, NoScriptError
from redis.typing import EncodableT, KeyT

DRAIN_ABOVE_BYTES = 64 * 1024
"""A write that leaves more than this in the transport's buffer waits for the socket."""


def _source(name: str) -> str:
    """A script's text, with each ``--#include <lib>`` line replaced by ``lua/lib/<lib>.lua``
    (itself expanded the same way); a library included twice is written once, where it is
    first included."""
    lua = files("app.store").joinpath("lua")
    included: set[str] = set()

    def expand(text: str) -> list[str]:
        lines = []
        for line in text.splitlines():
            if line.startswith("--#include "):
                lib = line.split()[1]
                if lib not in included:
                    included.add(lib)
                    lines.extend(expand(lua.joinpath("lib", f"{lib}.lua").read_text()))
                continue
            lines.append(line)
        return lines

    return "\n".join(expand(lua.joinpath(f"{name}.lua").read_text())) + "\n"


HELD_CONNECTIONS = 32
"""The most connections the scripts keep between calls; never more than a quarter of the
pool's, so that the client's other commands always find theirs."""


class HeldConnections:
    """Connections a client's scripts keep between calls, checked out of its pool.

    A kept connection is made ready as the pool makes one ready (``ensure_connection``:
    connected, reconnected where the server closed it, nothing left unread on it), after
    closing it where it still talks to a primary that Sentinel has since replaced (as the
    pool closes its idle connections when it learns of a new primary); one that cannot be made
    ready goes back to the pool with the error. A connection is kept again only while it is
    connected and not marked for reconnection: a call that failed or was given up half-way
    leaves its connection closed (redis-py's ``read_response``), and that one goes back to the
    pool. The pool still owns every connection: a failover's or a shutdown's ``disconnect``
    closes the kept ones too, and the next call made with one reconnects it.
    """

    def __init__(self, pool: Any, keep: int = HELD_CONNECTIONS) -> None:
        self._pool = pool
        self._keep = min(keep, int(getattr(pool, "max_connections", 0)) // 4)
        self._idle: list[Any] = []

    async def take(self) -> Any:
        if not self._idle:
            return await self._pool.get_connection()
        connection = self._idle.pop()
        try:
            if self._to_former_primary(connection):
                await connection.disconnect()
            await self._pool.ensure_connection(connection)
        except BaseException:
            await self._pool.release(connection)
            raise
        return connection

    async def give(self, connection: Any) -> None:
        if (
            connection.is_connected
            and not connection.should_reconnect()
            and len(self._idle) < self._keep
        ):
            self._idle.append(connection)
        else:
            await self._pool.release(connection)

    @property
    def kept(self) -> int:
        return len(self._idle)

    def _to_former_primary(self, connection: Any) -> bool:
        primary = getattr(self._pool, "master_address", None)  # a Sentinel pool's, once known
        return (
            primary is not None
            and connection.is_connected
            and (connection.host, connection.port) != tuple(primary)
        )


class Script:
    """One Lua script of a client (see the module docstring)."""

    def __init__(self, redis: Redis, source: str, held: HeldConnections | None = None) -> None:
        self._queued = redis.register_script(source)
        self._direct = not redis.single_connection_client
        self._held = held or HeldConnections(redis.connection_pool)
        self._text = source

    async def __call__(
        self,
        keys: Sequence[KeyT] = (),
        args: Sequence[EncodableT] = (),
        client: Pipeline | None = None,
    ) -> Any:
        if client is not None or not self._direct:
            return await self._queued(keys=keys, args=args, client=client)
        connection = await self._held.take()
        try:
            try:
                return await self._run(connection, keys, args)
            except NoScriptError:
                await connection.send_command("SCRIPT", "LOAD", self._text)
                self._queued.sha = await connection.read_response()
                return await self._run(connection, keys, args)
        finally:
            await self._held.give(connection)

    async def _run(self, connection: Any, keys: Sequence[KeyT], args: Sequence[EncodableT]) -> Any:
        parts: Any = ("EVALSHA", self._queued.sha, len(keys), *keys, *args)
        try:
            command = hiredis.pack_command(parts)
        except TypeError as exc:  # None, a bool, …: refused, as redis-py refuses them
            raise DataError(
                f"script keys and arguments are bytes, str, int or float: {exc}"
            ) from None
        await _send(connection, command)
        return await connection.read_response()


async def _send(connection: Any, command: bytes) -> None:
    """Write one packed command on a pool connection (see the module docstring)."""
    await connection.check_health()
    writer = getattr(connection, "_writer", None)
    if writer is None or writer.transport.is_closing():
        await connection.send_packed_command(command, check_health=False)  # its own errors
        return
    writer.write(command)
    if writer.transport.get_write_buffer_size() <= DRAIN_ABOVE_BYTES:
        return
    try:
        async with asyncio.timeout(connection.socket_timeout):
            await writer.drain()
    except BaseException as exc:  # half a command may be out: the connection goes
        await connection.disconnect(nowait=True)
        if isinstance(exc, TimeoutError):
            raise redis_errors.TimeoutError("Timeout writing to socket") from None
        if isinstance(exc, OSError):
            raise redis_errors.ConnectionError(f"Error while writing to socket: {exc}") from exc
        raise


@dataclass(frozen=True)
class Scripts:
    create_job: Script
    save_job: Script
    cancel_under_way: Script
    settle_late_answer: Script
    read_job: Script
    claim_jobs: Script
    renew_lease: Script
    authenticate: Script
    grant_credits: Script
    debit_credits: Script
    adjust_credits: Script
    check_rate_limit: Script
    acquire_slot: Script
    reserve_upstream: Script
    circuit: Script
    claim_webhooks: Script
    begin_idempotency: Script
    complete_idempotency: Script
    abandon_idempotency: Script
    batch_create: Script
    batch_take: Script
    batch_settle_item: Script
    batch_job_ended: Script
    batch_cancel: Script
    batch_complete: Script
    reserve_storage: Script
    claim_expired_blobs: Script
    release_storage: Script

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        held = HeldConnections(redis.connection_pool)
        fields = cls.__dataclass_fields__
        return cls(**{name: Script(redis, _source(name), held) for name in fields})
