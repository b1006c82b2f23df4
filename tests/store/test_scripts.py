"""A Lua script sent on a pool connection (``app.store.scripts.Script``): reloaded when the
server forgot it, and a connection never handed on with an answer still owed on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ResponseError

from app.store.scripts import Script
from tests.utils.deadlines import STORE_TIMEOUT_S

ECHO = "return ARGV[1]"
SLOW = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 300000
return 'slow'
"""


@pytest.fixture
async def one_connection(redis_url: str) -> AsyncIterator[Redis]:
    """A client whose pool holds one connection: every call reuses the one before's."""
    pool = BlockingConnectionPool.from_url(
        redis_url, max_connections=1, timeout=STORE_TIMEOUT_S, decode_responses=True
    )
    client = Redis.from_pool(pool)
    yield client
    await client.aclose()


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
