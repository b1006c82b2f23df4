"""Opening the one Redis client a process shares: one server, or a primary found by Sentinel.

``redis://…``, ``rediss://…`` and ``unix://…`` name one server. For a primary with replicas
watched by Redis Sentinel, the URL names the sentinels and the monitored master's name:

    redis+sentinel://[[user]:password@]host:port[,host:port…]/<master name>[/<db>]
        [?sentinel_password=…&sentinel_username=…]

The password in the user part is the data nodes' (primary and replicas); the sentinels' own,
when they have one, comes as a query parameter. The client asks the sentinels for the
primary before each new connection; after a failover the connections to the old primary fail
(or answer READONLY once it comes back as a replica), are dropped, and the next command
reaches the promoted one, with no restart of the process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

log = logging.getLogger(__name__)

SENTINEL_SCHEMES = ("redis+sentinel", "redis-sentinel", "sentinel")
MAX_CONNECTIONS = 256
TIMEOUT_S = 5.0
SENTINEL_TIMEOUT_S = 1.0
"""Per Sentinel asked: an unreachable one is skipped for the next quickly."""


def _client_options(timeout_s: float) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 30,
        "max_connections": MAX_CONNECTIONS,
        "timeout": timeout_s,
    }


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: list[tuple[str, int]]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def is_sentinel_url(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a ``redis+sentinel://`` URL (see the module's docstring)."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL: {url!r}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for host_port in hosts.split(","):
        host, _, port = host_port.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"sentinel address {host_port!r} is not host:port in {url!r}")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"expected /<master name>[/<db>] in {url!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return SentinelUrl(
        sentinels=sentinels,
        master=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_username=query.pop("sentinel_username", None),
        sentinel_password=query.pop("sentinel_password", None),
        options=query,
    )


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """The primary's connections as Sentinel finds it, with the blocking pool's waiting for a
    free connection (as for a single server)."""


class SentinelRedis(Redis):
    """The primary's client; closing it closes the clients of the sentinels too."""

    sentinels: Sentinel

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        await self.sentinels.aclose()


def connect(url: str, *, timeout_s: float = TIMEOUT_S) -> Redis:
    """A client that fails fast when Redis is away, instead of hanging a request: one server,
    or the primary Sentinel points at.

    A burst of requests larger than the pool waits (up to ``timeout_s``) for a connection to
    come free rather than being refused at once: the pool bounds Redis's connections, not the
    requests a process may serve. A connection not made, or an answer not read, within
    ``timeout_s`` fails the command (a stopped Redis refuses connections at once).
    """
    if not is_sentinel_url(url):
        pool = BlockingConnectionPool.from_url(url, **_client_options(timeout_s))
        return Redis.from_pool(pool)  # closing the client closes its pool
    given = parse_sentinel_url(url)
    sentinel_options: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        "decode_responses": True,
    }
    if given.sentinel_password:
        sentinel_options["password"] = given.sentinel_password
    if given.sentinel_username:
        sentinel_options["username"] = given.sentinel_username
    sentinel = Sentinel(given.sentinels, sentinel_kwargs=sentinel_options)
    client = sentinel.master_for(
        given.master,
        redis_class=SentinelRedis,
        connection_pool_class=BlockingSentinelConnectionPool,
        db=given.db,
        username=given.username,
        password=given.password,
        **_client_options(timeout_s),
    )
    assert isinstance(client, SentinelRedis)
    client.sentinels = sentinel
    return client


@dataclass(frozen=True)
class ReplicaWait:
    """``WAIT`` for replicas after a write that must outlive the primary (a job accepted).

    Redis replicates asynchronously: a primary that dies a moment after answering may take
    its last writes with it, and Sentinel promotes a replica that never saw them. ``WAIT n
    timeout`` on the connection that wrote blocks until ``n`` replicas hold those writes. When
    fewer acknowledge in time the write still stands on the primary (it cannot be taken
    back); that is logged, and refusing writes without replicas is the primary's own
    ``min-replicas-to-write`` (see docs/scale-out.md).
    """

    replicas: int = 0
    timeout_ms: int = 1000

    def queue(self, pipe: Pipeline) -> None:
        pipe.execute_command("WAIT", self.replicas, self.timeout_ms)

    def check(self, acked: int, what: str) -> bool:
        if acked >= self.replicas:
            return True
        log.warning(
            "%s acknowledged by %d of %d replicas within %d ms; kept on the primary only",
            what,
            acked,
            self.replicas,
            self.timeout_ms,
        )
        return False
