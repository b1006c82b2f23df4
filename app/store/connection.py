"""Opening the one Redis client a process shares."""

from __future__ import annotations

from redis.asyncio import Redis


def connect(url: str) -> Redis:
    """A client that fails fast when Redis is away, instead of hanging a request."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5.0,
        socket_connect_timeout=2.0,
        health_check_interval=30,
        max_connections=256,
    )
