"""A job's writes waited for on replicas: its creation and each of its saves.

With ``ReplicaWait.replicas`` set, the write's script and then ``WAIT`` go out on the same
connection in one round trip (a pipeline), so the answer comes once the write reached that
many replicas, or after the timeout (``app/store/connection.py``). ``JobStore`` writes
through these only when replicas are asked for; without them a write is its script alone.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.store.connection import ReplicaWait
from app.store.scripts import Scripts


async def create_job(
    redis: Redis,
    scripts: Scripts,
    replica_wait: ReplicaWait,
    script_keys: list[str],
    script_args: list[int | str],
) -> list[int]:
    """The creation, then ``WAIT`` on the same connection: answered once the job (and its
    credit hold) reached ``replica_wait.replicas`` replicas, or after the timeout."""
    async with redis.pipeline(transaction=False) as pipe:
        await scripts.create_job(keys=script_keys, args=script_args, client=pipe)
        replica_wait.queue(pipe)
        answer, acked = await pipe.execute(raise_on_error=False)
    if isinstance(answer, ResponseError):  # the script's own refusal (``exists``)
        raise answer
    if int(answer[0]) == 1:  # created: it stands whatever WAIT answered, as a save does
        replica_wait.check(_acked(acked), "job creation")
    return [int(value) for value in answer]


async def save_job(
    redis: Redis,
    scripts: Scripts,
    replica_wait: ReplicaWait,
    script_keys: list[str],
    script_args: list[int | str],
    job_id: str,
) -> list[int]:
    """``save_job.lua``, then ``WAIT`` on the same connection in the same round trip, as the
    creation does (:func:`create_job`). Every save is waited for, not only the creation: a
    save a failover lost would leave the promoted replica with an older version of the job,
    and the next one refused as stale — the save of a task id an upstream just accepted among
    them, which would leave the task off the record and the job to be submitted again
    (docs/scale-out.md)."""
    async with redis.pipeline(transaction=False) as pipe:
        await scripts.save_job(keys=script_keys, args=script_args, client=pipe)
        replica_wait.queue(pipe)
        saved, acked = await pipe.execute(raise_on_error=False)
    if isinstance(saved, Exception):  # as the script answered it (a refusal: not applied)
        raise saved
    replica_wait.check(_acked(acked), f"job {job_id}'s save")  # the save stands
    return [int(value) for value in saved]


def _acked(reply: object) -> int:
    """How many replicas ``WAIT`` says hold the write; an error there is read as none (the
    write was applied: raising would have the caller make it again)."""
    return 0 if isinstance(reply, Exception) else int(str(reply))
