"""A job run while its client waits: its output's deletion is scheduled by its creation, the
output is written, and the job's terminal save counts it against the tenant's storage quota
(``app/jobs/storage.py``), on a real Redis. Nothing is kept past the quota, and no byte is ever
on disk without its deletion scheduled, whatever line a process dies at."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from app.domain.models import ChargeReason, Job, JobStatus
from app.domain.operations import GenerateImage, Operation
from app.jobs.envelope import Envelope
from app.jobs.storage import ORPHAN_AFTER_S, Sweeper
from app.providers.base import Call, SubmitResult
from app.store import keys
from app.store.files import BlobMeta
from app.store.storage import BlobEntry, ScheduledOutputs
from tests.jobs.harness import ALPHA_PRICE, TENANT, WAIT_S, Core, job_core, picture

RETENTION_S = 3600  # the harness's output retention


async def waited(core: Core) -> Job:
    """An ``image.generate`` job its client waits for, whose upstream answers at once."""
    core.alpha.submits.append(picture())
    params = GenerateImage.model_validate({"prompt": "a lighthouse"})
    return await core.service.submit(
        TENANT, Operation.image_generate, params, Envelope(provider="alpha"), wait_s=WAIT_S
    )


async def schedule(redis: Redis) -> dict[str, float]:
    """The deletion schedule: each entry (``<blob id>|<bytes>|<tenant>``) and when it is due."""
    entries = await redis.zrange(keys.BLOB_EXPIRIES, 0, -1, withscores=True)
    return {str(member): float(score) for member, score in cast(Any, entries)}


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


async def test_the_terminal_save_keeps_the_output_counted_and_scheduled(
    redis_client: Redis, tmp_path: Path
) -> None:
    async with job_core(redis_client, tmp_path) as core:
        before_ms = time.time() * 1000
        job = await waited(core)
        assert job.status is JobStatus.succeeded, job
        assert job.output is not None
        [artifact] = job.output.artifacts
        assert await core.storage.blobs.get(artifact.id) is not None
        usage = await core.storage.usage(TENANT.id)
        assert usage.used_bytes == artifact.bytes > 0
        entries = await schedule(redis_client)
        # the creation's entry of 0 bytes became the output's own, due at its retention's end
        assert list(entries) == [f"{artifact.id}|{artifact.bytes}|{TENANT.id}"]
        due = next(iter(entries.values()))
        assert before_ms + RETENTION_S * 1000 <= due <= time.time() * 1000 + RETENTION_S * 1000
        record = await redis_client.get(keys.artifact(artifact.id))
        assert record is not None
        assert BlobMeta.model_validate_json(record).size == artifact.bytes
        assert 0 < await redis_client.ttl(keys.artifact(artifact.id)) <= RETENTION_S
        assert await core.available() == 1000 - ALPHA_PRICE


async def test_an_output_past_the_quota_at_the_save_fails_the_job_and_is_not_kept(
    redis_client: Redis, tmp_path: Path
) -> None:
    async with job_core(redis_client, tmp_path, storage_quota_bytes=10) as core:
        job = await waited(core)
        assert job.status is JobStatus.failed, job
        assert job.error is not None
        assert job.error.code == "storage_quota_exceeded"
        assert job.output is None
        assert files_under(tmp_path / "blobs") == []  # written, then deleted before the job ended
        assert (await core.storage.usage(TENANT.id)).used_bytes == 0
        assert await redis_client.keys(keys.artifact("*")) == []
        # the creation's entry stays: it deletes whatever a failed deletion left
        [entry] = (await schedule(redis_client)).keys()
        assert entry.endswith(f"|0|{TENANT.id}")
        assert await core.available() == 1000  # the hold released, nothing charged
        stored = await core.store.get(job.id)
        assert stored is not None
        attempt = stored.record.job.attempts[-1]
        assert attempt.status == "failed"
        # the upstream delivered, and billed, the result the tenant could not keep
        assert attempt.charge_reason is ChargeReason.undelivered
        assert attempt.upstream_cost == ALPHA_PRICE


async def test_an_output_written_by_a_process_that_died_before_the_save_is_deleted_when_due(
    redis_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with job_core(redis_client, tmp_path) as core:

        async def died(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the process died here")

        monkeypatch.setattr(core.lifecycle, "succeed", died)
        created_ms = time.time() * 1000
        # the job exists, so its submission answers it as it stands (the save never came)
        job = await waited(core)
        assert job.status is JobStatus.running and job.output is None
        [orphan] = files_under(tmp_path / "blobs")
        [entry] = (await schedule(redis_client)).items()
        assert entry[0] == f"{orphan.name}|0|{TENANT.id}"
        assert entry[1] >= created_ms + (RETENTION_S + ORPHAN_AFTER_S) * 1000 - 1000

        sweeper = Sweeper(core.storage.ledger, core.storage.blobs, core.metrics, 1)
        assert await sweeper.sweep_once() == 0  # not due yet
        assert files_under(tmp_path / "blobs") == [orphan]
        monkeypatch.setattr("app.jobs.storage.now_ms", lambda: int(entry[1]) + 1)
        assert await sweeper.sweep_once() == 1
        assert files_under(tmp_path / "blobs") == []
        assert await schedule(redis_client) == {}
        assert (await core.storage.usage(TENANT.id)).used_bytes == 0


async def test_an_output_whose_entry_a_sweeper_claimed_is_not_kept(
    redis_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweeper that claimed the entry is deleting the bytes: the save refuses the output and
    the job fails; the sweeper's deletion goes ahead."""
    async with job_core(redis_client, tmp_path) as core:
        write = core.storage.write_scheduled

        async def claimed_meanwhile(
            tenant_id: str,
            items: Sequence[tuple[BlobMeta, bytes]],
            scheduled: Sequence[BlobEntry],
            *,
            within_s: float = 0.0,
        ) -> ScheduledOutputs:
            written = await write(tenant_id, items, scheduled, within_s=within_s)
            far = int(time.time() * 1000) + (RETENTION_S + 2 * ORPHAN_AFTER_S) * 1000
            assert len(await core.storage.ledger.claim_expired(far, 60_000, 10)) == 1
            return written

        monkeypatch.setattr(core.storage, "write_scheduled", claimed_meanwhile)
        job = await waited(core)
        assert job.status is JobStatus.failed, job
        assert job.error is not None
        assert job.error.code == "internal_error"
        assert (await core.storage.usage(TENANT.id)).used_bytes == 0
        assert await redis_client.keys(keys.artifact("*")) == []
        assert await core.available() == 1000


async def test_a_job_not_waited_for_stores_its_output_as_before(
    redis_client: Redis, tmp_path: Path
) -> None:
    """A worker's step has no scheduled output: the output's reservation comes first."""
    async with job_core(redis_client, tmp_path) as core:
        job_id = await core.submit()
        assert await schedule(redis_client) == {}
        record = await core.step(job_id)  # submitted
        record = await core.step(job_id)  # polled: done
        assert record.job.status is JobStatus.succeeded
        assert record.job.output is not None
        [artifact] = record.job.output.artifacts
        assert list(await schedule(redis_client)) == [f"{artifact.id}|{artifact.bytes}|{TENANT.id}"]


async def test_an_output_whose_job_ended_meanwhile_is_deleted(
    redis_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Canceled while its upstream call was under way: the terminal save is refused, and the
    output written for it is deleted at once rather than when its entry comes due."""
    async with job_core(redis_client, tmp_path) as core:
        answered = asyncio.Event()

        async def held(call: Call) -> SubmitResult:
            await answered.wait()
            return picture()

        monkeypatch.setattr(core.alpha, "submit", held)
        params = GenerateImage.model_validate({"prompt": "a lighthouse"})
        waiting = asyncio.create_task(
            core.service.submit(
                TENANT, Operation.image_generate, params, Envelope(provider="alpha"), wait_s=WAIT_S
            )
        )
        deadline = time.monotonic() + WAIT_S
        while not (job_keys := await redis_client.keys(keys.job("*"))):
            assert time.monotonic() < deadline, "the job was never created"
            await asyncio.sleep(0.01)
        [job_key] = job_keys
        stored = await core.store.get(str(job_key).removeprefix(keys.job("")))
        assert stored is not None
        await core.lifecycle.cancel(stored)
        answered.set()
        job = await waiting
        assert job.status is JobStatus.canceled, job
        assert files_under(tmp_path / "blobs") == []
        assert (await core.storage.usage(TENANT.id)).used_bytes == 0


async def test_a_first_step_that_writes_nothing_drops_the_scheduled_entry(
    redis_client: Redis, tmp_path: Path
) -> None:
    """The upstream takes the task to run it later: the step's save hands the job to the
    workers and drops the entry nothing was written under; a worker's step stores the output
    as any worker's step does."""
    async with job_core(redis_client, tmp_path) as core:
        params = GenerateImage.model_validate({"prompt": "a lighthouse"})
        job = await core.service.submit(
            TENANT, Operation.image_generate, params, Envelope(provider="alpha"), wait_s=0.5
        )
        assert job.status is JobStatus.running, job
        claimed = await core.claim(job.id)  # due once its first step's save handed it over
        assert await schedule(redis_client) == {}
        record = (await core.runner.step(claimed)).record  # polled: done
        assert record.job.status is JobStatus.succeeded
        assert record.job.output is not None
        [artifact] = record.job.output.artifacts
        assert list(await schedule(redis_client)) == [f"{artifact.id}|{artifact.bytes}|{TENANT.id}"]
