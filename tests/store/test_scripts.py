"""A Lua script sent on a pool connection (``app.store.scripts.Script``): reloaded when the
server forgot it, its arguments delivered as redis-py delivers them, and a connection never
handed on with an answer still owed on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import DataError, ResponseError
from redis.typing import EncodableT

from app.store.scripts import HeldConnections, Script, Scripts, _source
from tests.utils.deadlines import STORE_TIMEOUT_S
from tests.utils.net import with_db

ECHO = "return ARGV[1]"
SLOW = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 300000
return 'slow'
"""


@asynccontextmanager
async def client_of(redis_url: str, connections: int) -> AsyncIterator[Redis]:
    """A client whose blocking pool holds at most ``connections`` connections."""
    pool = BlockingConnectionPool.from_url(
        redis_url, max_connections=connections, timeout=STORE_TIMEOUT_S, decode_responses=True
    )
    client = Redis.from_pool(pool)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def one_connection(redis_url: str) -> AsyncIterator[Redis]:
    """A client whose pool holds one connection: every call reuses the one before's."""
    async with client_of(redis_url, 1) as client:
        yield client


async def test_a_script_the_server_forgot_is_loaded_again(one_connection: Redis) -> None:
    echo = Script(one_connection, ECHO)
    assert await echo(args=["first"]) == "first"
    await one_connection.script_flush()
    assert await echo(args=["again"]) == "again"


async def test_an_error_reply_leaves_the_connection_in_step(one_connection: Redis) -> None:
    failing = Script(one_connection, "return redis.error_reply('refused here')")
    echo = Script(one_connection, ECHO)
    with pytest.raises(ResponseError, match="refused here"):
        await failing()
    assert await echo(args=["next"]) == "next"


async def test_a_call_given_up_does_not_leave_its_answer_to_the_next(
    one_connection: Redis,
) -> None:
    """A caller cancelled while its script runs (a client gone, a deadline passed): the next
    call on the pool's one connection reads its own answer, never the cancelled one's."""
    slow, echo = Script(one_connection, SLOW), Script(one_connection, ECHO)
    await slow()  # loaded, so the call below is one EVALSHA
    waiting = asyncio.create_task(slow())
    await asyncio.sleep(0.1)  # sent, and Redis busy running it
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await echo(args=["mine"]) == "mine"
    assert await echo(args=["and mine"]) == "and mine"


ARGS = "return {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], #ARGV[6], KEYS[1]}"


async def test_arguments_arrive_as_redis_py_sends_them(one_connection: Redis) -> None:
    """Text, bytes with protocol characters, numbers: Lua reads what redis-py's own command
    path would have written (a float by its shortest repr, an int past 64 bits whole)."""
    args = Script(one_connection, ARGS)
    given: list[EncodableT] = ["é ✓", b"a\r\n$3\r\nb", 0.1, 10**30, -7, "x" * 1000]
    assert await args(keys=["k:é"], args=given) == [
        "é ✓",
        "a\r\n$3\r\nb",
        "0.1",
        str(10**30),
        "-7",
        1000,
        "k:é",
    ]


async def test_an_argument_larger_than_a_socket_buffer_is_written_whole(
    one_connection: Redis,
) -> None:
    """Past ``DRAIN_ABOVE_BYTES`` the write waits for the socket; all of it reaches Redis and
    the connection serves the next call."""
    length = Script(one_connection, "return #ARGV[1]")
    echo = Script(one_connection, ECHO)
    assert await length(args=["y" * 8_000_000]) == 8_000_000
    assert await echo(args=["after"]) == "after"


@pytest.mark.parametrize("bad", [None, True])
async def test_an_argument_redis_cannot_take_is_refused_before_anything_is_sent(
    one_connection: Redis, bad: object
) -> None:
    echo = Script(one_connection, ECHO)
    with pytest.raises(DataError):
        await echo(args=["ok", bad])  # type: ignore[list-item]
    assert await echo(args=["still in step"]) == "still in step"


async def test_a_connection_the_server_closed_is_replaced(
    one_connection: Redis, redis_url: str
) -> None:
    """Closed while idle in the pool (a restart, a timeout on the server): the next call
    goes out on a new connection instead of failing on the dead one."""
    echo = Script(one_connection, ECHO)
    assert await echo(args=["before"]) == "before"
    pooled = await one_connection.client_id()  # the pool's one connection
    killer = Redis.from_url(redis_url)
    try:
        assert await killer.client_kill_filter(_id=str(pooled)) == 1
    finally:
        await killer.aclose()
    assert await echo(args=["after"]) == "after"
    assert await one_connection.client_id() != pooled


@pytest.fixture
async def pooled(redis_url: str) -> AsyncIterator[Redis]:
    """A client whose pool has room for the scripts to keep connections between calls."""
    async with client_of(redis_url, 16) as client:
        yield client


def in_use(client: Redis) -> int:
    """Connections checked out of the client's pool (the kept ones among them)."""
    return len(client.connection_pool._in_use_connections)  # noqa: SLF001


async def test_kept_connections_never_pass_a_quarter_of_the_pool(pooled: Redis) -> None:
    held = HeldConnections(pooled.connection_pool)
    echo = Script(pooled, ECHO, held)
    answers = await asyncio.gather(*(echo(args=[f"call {i}"]) for i in range(12)))
    assert answers == [f"call {i}" for i in range(12)]
    assert held.kept == 16 // 4
    assert in_use(pooled) == held.kept  # the others went back to the pool
    assert await pooled.ping()  # the client's own commands find a connection


async def test_a_pool_of_one_lends_its_connection_to_no_script(one_connection: Redis) -> None:
    held = HeldConnections(one_connection.connection_pool)
    echo = Script(one_connection, ECHO, held)
    assert await echo(args=["once"]) == "once"
    assert held.kept == 0
    assert await one_connection.ping()


async def test_a_kept_connection_the_server_closed_is_made_again(
    pooled: Redis, redis_url: str
) -> None:
    held = HeldConnections(pooled.connection_pool)
    echo = Script(pooled, ECHO, held)
    assert await echo(args=["before"]) == "before"
    assert held.kept == 1
    killer = Redis.from_url(redis_url)
    try:
        assert await killer.client_kill_filter(_type="normal", skipme=True) >= 1
    finally:
        await killer.aclose()
    await asyncio.sleep(0.05)  # its close, sent before the kill was answered, is read here
    assert await echo(args=["after"]) == "after"
    assert held.kept == 1


async def test_a_call_given_up_half_way_is_not_kept_and_the_next_reads_its_own_answer(
    pooled: Redis,
) -> None:
    held = HeldConnections(pooled.connection_pool)
    slow, echo = Script(pooled, SLOW, held), Script(pooled, ECHO, held)
    await slow()
    assert held.kept == 1
    waiting = asyncio.create_task(slow())  # on the kept connection
    await asyncio.sleep(0)  # its first step sends the call; no answer can be read before this
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert held.kept == 0  # closed half-way: back to the pool
    assert await echo(args=["mine"]) == "mine"
    assert await echo(args=["and mine"]) == "and mine"
    assert in_use(pooled) == held.kept == 1


async def test_closing_the_client_closes_the_kept_connections(
    redis_url: str,
) -> None:
    pool = BlockingConnectionPool.from_url(redis_url, max_connections=16, decode_responses=True)
    client = Redis.from_pool(pool)
    held = HeldConnections(pool)
    echo = Script(client, ECHO, held)
    assert await echo(args=["x"]) == "x"
    (kept,) = pool._in_use_connections  # noqa: SLF001
    assert kept.is_connected
    await client.aclose()
    assert not kept.is_connected


def test_each_library_is_written_once_where_it_is_first_included() -> None:
    """``create_job`` includes credits, slots and rate, and each of those includes the
    clock: the clock is written once, before the first library that uses it."""
    text = _source("create_job")
    assert "--#include" not in text
    assert text.count("local function now_us()") == 1
    assert text.count("local function take_slot(") == 1
    assert text.count("redis.call('TIME')") == 1
    assert text.index("local function now_us()") < text.index("local function ledger_entry(")


async def test_every_script_compiles_on_the_server(redis_url: str) -> None:
    async with client_of(redis_url, 4) as client:
        for name in Scripts.__dataclass_fields__:
            sha = await client.script_load(_source(name))
            assert await client.script_exists(sha) == [True], name


async def test_a_job_creation_reads_the_clock_once(redis_url: str) -> None:
    """Its rate, its slot and its hold are all taken at the same Redis time: the script asks
    the server for it once (seen on ``MONITOR``, which shows the commands a script runs)."""
    db = 13
    async with client_of(with_db(redis_url, db), 4) as client:
        script = Scripts.register(client).create_job
        keys = [f"t:{name}" for name in ("job", "due", "leases", "jobs", "acct", "hold")]
        keys += [f"t:{name}" for name in ("holds", "ledger", "slots", "expiries", "rate")]
        await client.hset("t:acct", "balance", 10)
        args: list[EncodableT] = ["{}", "queued", "tenant", 1, "", 0, "job_t", 2, "job"]
        args += [5, 60_000, "", "", "", "", 0, 1_000_000, 10]
        seen: list[str] = []
        async with client.monitor() as monitor:
            created = await script(keys, args)
            await client.echo("created")
            while (command := await monitor.next_command())["command"] != "ECHO created":
                if command["db"] == db:
                    seen.append(command["command"])
        assert created[0] == 1
        assert [c for c in seen if c.startswith("TIME")] == ["TIME"]
        assert await client.zscore("t:slots", "job_t") is not None
        assert await client.get("t:rate") is not None
        assert await client.hget("t:hold", "state") == "held"
