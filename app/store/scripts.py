"""The Lua scripts, loaded from ``lua/*.lua`` and registered once per Redis client."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def _source(name: str) -> str:
    """A script's text, with each ``--#include <lib>`` line replaced by ``lua/lib/<lib>.lua``."""
    lua = files("app.store").joinpath("lua")
    lines = []
    for line in lua.joinpath(f"{name}.lua").read_text().splitlines():
        if line.startswith("--#include "):
            line = lua.joinpath("lib", f"{line.split()[1]}.lua").read_text()
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Scripts:
    create_job: AsyncScript
    save_job: AsyncScript
    read_job: AsyncScript
    claim_jobs: AsyncScript
    renew_lease: AsyncScript
    authenticate: AsyncScript
    grant_credits: AsyncScript
    debit_credits: AsyncScript
    adjust_credits: AsyncScript
    check_rate_limit: AsyncScript
    acquire_slot: AsyncScript
    reserve_upstream: AsyncScript
    circuit: AsyncScript
    claim_webhooks: AsyncScript
    begin_idempotency: AsyncScript
    complete_idempotency: AsyncScript
    abandon_idempotency: AsyncScript
    batch_take: AsyncScript
    batch_settle_item: AsyncScript
    batch_job_ended: AsyncScript
    batch_cancel: AsyncScript
    batch_complete: AsyncScript
    reserve_storage: AsyncScript
    claim_expired_blobs: AsyncScript
    release_storage: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        return cls(
            **{name: redis.register_script(_source(name)) for name in cls.__dataclass_fields__}
        )
