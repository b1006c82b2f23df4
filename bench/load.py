"""A small closed-loop HTTP/1.1 load generator (keep-alive, one request in flight per connection).

Written on raw asyncio streams so the generator itself costs little CPU on the same machine;
both the gateway and the direct path are measured with it, so their ratio is fair.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""

    def raw(self) -> tuple[str, int, bytes]:
        parts = urlsplit(self.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{self.method} {path} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return parts.hostname or "127.0.0.1", parts.port or 80, head + self.body


@dataclass(frozen=True)
class Result:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _connection(
    request: Request, stop_at: float, warmup_until: float, latencies: list[float], counts: list[int]
) -> None:
    host, port, payload = request.raw()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            writer.write(payload)
            status = await _read_response(reader)
            done = time.perf_counter()
            if started < warmup_until:
                continue
            if 200 <= status < 300:
                latencies.append((done - started) * 1000)
                counts[0] += 1
            else:
                counts[1] += 1
    finally:
        writer.close()


async def run(request: Request, concurrency: int, seconds: float, warmup_s: float = 1.0) -> Result:
    """Keep ``concurrency`` connections busy for ``warmup_s + seconds``; measure the latter."""
    start = time.perf_counter()
    warmup_until = start + warmup_s
    stop_at = warmup_until + seconds
    latencies: list[float] = []
    counts = [0, 0]
    await asyncio.gather(
        *(
            _connection(request, stop_at, warmup_until, latencies, counts)
            for _ in range(concurrency)
        )
    )
    measured = time.perf_counter() - warmup_until
    return Result(counts[0], counts[1], measured, latencies)
