"""The Lua scripts, loaded from ``lua/*.lua`` and registered once per Redis client."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def _source(name: str) -> str:
    return files("app.store").joinpath("lua", f"{name}.lua").read_text()


@dataclass(frozen=True)
class Scripts:
    create_job: AsyncScript
    save_job: AsyncScript
    claim_jobs: AsyncScript
    renew_lease: AsyncScript
    authenticate: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        return cls(
            **{name: redis.register_script(_source(name)) for name in cls.__dataclass_fields__}
        )
