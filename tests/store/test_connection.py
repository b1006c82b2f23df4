"""Opening Redis through Sentinel, failing over without a restart, and WAIT for replicas."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from app.config import SANDBOX_TENANT_KEY
from app.domain.models import JobStatus
from app.gateway import SANDBOX_TENANT_ID
from app.store import keys
from app.store.connection import (
    ReplicaWait,
    SentinelRedis,
    connect,
    is_sentinel_url,
    parse_sentinel_url,
)
from app.store.jobs import JobExists, JobStore, SaveRefused, Schedule, Stored
from app.store.scripts import Scripts
from tests.store.test_jobs import make_record
from tests.utils.deadlines import FAILOVER_S
from tests.utils.in_process import in_process_gateway
from tests.utils.media import png_b64
from tests.utils.sentinel import Topology, sentinel_topology


def test_parse_sentinel_urls() -> None:
    parsed = parse_sentinel_url("redis+sentinel://10.0.0.1:26379,sentinel-b:26380/mymaster/3")
    assert parsed.sentinels == [("10.0.0.1", 26379), ("sentinel-b", 26380)]
    assert (parsed.master, parsed.db, parsed.password) == ("mymaster", 3, None)
    secret = parse_sentinel_url(
        "redis+sentinel://app:p%40ss@h:1/m?sentinel_password=s3&sentinel_username=sen"
    )
    assert (secret.username, secret.password, secret.db) == ("app", "p@ss", 0)
    assert (secret.sentinel_username, secret.sentinel_password) == ("sen", "s3")
    assert parse_sentinel_url("redis+sentinel://:pw@h:1/m").password == "pw"
    assert is_sentinel_url("redis+sentinel://h:1/m")
    assert not is_sentinel_url("redis://h:6379/0")
    assert not is_sentinel_url("unix:///tmp/redis.sock")


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h:1",  # no master name
        "redis+sentinel://h:1/m/x",  # db not a number
        "redis+sentinel://h/m",  # no port
        "redis+sentinel://h:1,/m",  # empty address
        "redis://h:1/m",
    ],
)
def test_bad_sentinel_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sentinel_url(url)


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with sentinel_topology(tmp_path_factory.mktemp("sentinel")) as nodes:
        yield nodes


async def test_wait_holds_the_answer_until_the_replica_has_the_job(topology: Topology) -> None:
    client = connect(topology.url(1))
    try:
        store = JobStore(
            client, Scripts.register(client), retention_s=60, replica_wait=ReplicaWait(1, 5000)
        )
        job_waited = make_record()
        created = await store.create(job_waited, price=0, slot_limit=10)
        assert isinstance(created, Stored)
        # Answered only after the replica acknowledged: it already holds the job.
        replica = topology.replica.client()
        replica.execute_command("SELECT", 1)  # type: ignore[no-untyped-call]
        assert replica.hget(keys.job(job_waited.job.id), "status") == "queued"
    finally:
        await client.aclose()


async def test_a_waited_creation_of_an_existing_job_is_refused_as_such(
    topology: Topology,
) -> None:
    """The creation and its ``WAIT`` go in one pipeline: an id that exists is answered as one
    (an earlier attempt of the same request made it), not as a pipeline error."""
    client = connect(topology.url(1))
    try:
        store = JobStore(
            client, Scripts.register(client), retention_s=60, replica_wait=ReplicaWait(1, 5000)
        )
        record = make_record()
        assert isinstance(await store.create(record, price=0, slot_limit=10), Stored)
        assert await store.create(record, price=0, slot_limit=10) == JobExists()
    finally:
        await client.aclose()


async def test_too_few_replicas_is_logged_and_the_job_stands(
    topology: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(topology.url(1))
    try:
        store = JobStore(
            client, Scripts.register(client), retention_s=60, replica_wait=ReplicaWait(2, 200)
        )
        with caplog.at_level(logging.WARNING, logger="app.store.connection"):
            job_short = make_record()
        created = await store.create(job_short, price=0, slot_limit=10)
        assert isinstance(created, Stored)
        assert "acknowledged by 1 of 2 replicas" in caplog.text
        assert await client.hget(keys.job(job_short.job.id), "status") == "queued"
    finally:
        await client.aclose()


async def test_every_save_of_a_job_is_waited_for_like_its_creation(
    topology: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    """A save a failover lost would leave the promoted replica an older version of the job (and
    the next save refused as stale, a task id an upstream accepted among them): each save sends
    ``WAIT`` in its round trip, and answers once the replica holds what it wrote."""
    client = connect(topology.url(1))
    primary = topology.primary.client()

    def waits() -> int:
        stats = primary.info("commandstats").get("cmdstat_wait", {"calls": 0})
        return int(stats["calls"])

    try:
        store = JobStore(
            client, Scripts.register(client), retention_s=60, replica_wait=ReplicaWait(1, 5000)
        )
        record = make_record()
        created = await store.create(record, price=0, slot_limit=10, lease_s=30)
        assert isinstance(created, Stored) and created.lease is not None
        before = waits()
        record.job.status = JobStatus.running
        running = await store.save(created, schedule=Schedule.keep, lease=created.lease)
        record.job.status = JobStatus.succeeded
        done = await store.save(running, schedule=Schedule.release, lease=created.lease)
        assert waits() - before == 2
        replica = topology.replica.client()
        replica.execute_command("SELECT", 1)  # type: ignore[no-untyped-call]
        held = replica.hmget(keys.job(record.job.id), "status", "version")
        assert held == ["succeeded", str(done.version)]

        short = JobStore(
            client, Scripts.register(client), retention_s=60, replica_wait=ReplicaWait(2, 200)
        )
        again = make_record()
        created = await store.create(again, price=0, slot_limit=10, lease_s=30)
        assert isinstance(created, Stored) and created.lease is not None
        again.job.status = JobStatus.running
        with caplog.at_level(logging.WARNING, logger="app.store.connection"):
            saved = await short.save(created, schedule=Schedule.keep, lease=created.lease)
        assert f"job {again.job.id}'s save acknowledged by 1 of 2 replicas" in caplog.text
        assert saved.version == 2  # the save stands on the primary
        assert await client.hget(keys.job(again.job.id), "status") == "running"
        # a refusal is the script's own, not WAIT's: a stale version is refused as before
        with pytest.raises(SaveRefused, match="stale"):
            await short.save(created, schedule=Schedule.keep, lease=created.lease)
    finally:
        await client.aclose()


async def test_a_primary_refusing_writes_without_replicas_is_a_503_and_stores_nothing(
    topology: Topology, tmp_path: Path
) -> None:
    """``min-replicas-to-write`` above the replicas it has: Redis answers NOREPLICAS to every
    write, the gateway 503 ``store_unavailable`` — no job, no hold, no charge."""
    headers = {"Authorization": f"Bearer {SANDBOX_TENANT_KEY}"}
    body = {"image": {"data": png_b64()}, "provider": "imagepig"}
    primary = topology.primary.client()
    async with in_process_gateway(topology.url(4), tmp_path, headers=headers, sandbox=True) as (
        gateway,
        client,
    ):
        jobs_key = keys.tenant_jobs(SANDBOX_TENANT_ID)
        primary.config_set("min-replicas-to-write", 2)
        try:
            refused = await client.post("/v1/images/remove-background", json=body)
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "store_unavailable"
            assert refused.headers["retry-after"] == "1"
            assert await gateway.redis.zcard(jobs_key) == 0
            account = await gateway.accounting.ledger.account(SANDBOX_TENANT_ID)
            assert account.reserved == 0
        finally:
            primary.config_set("min-replicas-to-write", 0)
        accepted = await client.post("/v1/images/remove-background", json=body)
        assert accepted.status_code == 202, accepted.text
        assert await gateway.redis.zcard(jobs_key) == 1


async def test_the_client_follows_a_failover_without_a_restart(topology: Topology) -> None:
    """Runs last in this module: it kills the primary."""
    client = connect(topology.url(2))
    assert isinstance(client, SentinelRedis)
    try:
        await client.set("before", "1")
        assert client.connection_pool.connection_kwargs["db"] == 2
        topology.primary.kill()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FAILOVER_S
        failures = 0
        while True:
            try:
                await client.set("after", "2")
                break
            except RedisError:
                failures += 1
                assert loop.time() < deadline, "no primary after the failover"
                await asyncio.sleep(0.2)
        assert failures > 0  # the old primary was really gone for a while
        topology.wait_promoted()
        replica = topology.replica.client()
        replica.execute_command("SELECT", 2)  # type: ignore[no-untyped-call]
        assert replica.get("after") == "2"  # written to the promoted replica
        assert await client.get("before") == "1"  # replicated before the kill
    finally:
        await client.aclose()
