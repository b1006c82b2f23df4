"""The upstream-spend stream: one entry per finished job, appended by its terminal save.

Each entry holds the job id, the credits its tenant was charged (read from the hold by the same
script that settled it) and a JSON record of its attempts with what each cost the provider
(``app.jobs.accounting.SpendRecord``). Entry ids are the Redis time of the save, so a time
window is a range read. The stream is trimmed to about ``SPEND_MAX_LEN`` entries.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from app.store import keys

_BATCH = 500


@dataclass(frozen=True)
class SpendEntry:
    at_ms: int
    job_id: str
    charged: int
    record: str


class SpendLog:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def read(self, since_ms: int, until_ms: int | None, *, limit: int) -> list[SpendEntry]:
        """Entries saved in ``[since_ms, until_ms]`` (to now when ``None``), oldest first, at
        most ``limit``."""
        lower = f"{since_ms}-0"
        upper = "+" if until_ms is None else f"{until_ms}-18446744073709551615"
        found: list[SpendEntry] = []
        while len(found) < limit:
            rows = (
                await self.redis.xrange(
                    keys.SPEND, min=lower, max=upper, count=min(_BATCH, limit - len(found))
                )
                or []
            )
            for entry_id, fields in rows:
                values = {str(k): str(v) for k, v in (fields or {}).items()}
                found.append(
                    SpendEntry(
                        at_ms=int(str(entry_id).split("-", 1)[0]),
                        job_id=values["job_id"],
                        charged=int(values["charged"]),
                        record=values["record"],
                    )
                )
            if len(rows) < _BATCH:
                break
            lower = f"({rows[-1][0]!s}"
        return found
