"""Opening the one Redis client a process shares."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

MAX_CONNECTIONS = 256
TIMEOUT_S = 5.0


def connect(url: str, *, timeout_s: float = TIMEOUT_S) -> Redis:
    """A client that fails fast when Redis is away, instead of hanging a request.

    A burst of requests larger than the pool waits (up to ``timeout_s``) for a connection to
    come free rather than being refused at once: the pool bounds Redis's connections, not the
    requests a process may serve. A connection not made, or an answer not read, within
    ``timeout_s`` fails the command (a stopped Redis refuses connections at once).
    """
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout_s,
    )
    return Redis.from_pool(pool)  # closing the client closes its pool
