"""The reference servers ``make bench`` measures the gateway against, each its own process.

``python -m bench.servers upstream --port N``
    A mock upstream on raw asyncio (uvloop): every ``POST`` is answered at once with Image
    Pig's success body (a small PNG inline), every ``GET`` with ``{}``. It stands in for the
    provider, so "upstream direct" costs almost nothing and the gateway's overhead shows.
``python -m bench.servers floor --port N --upstream URL --processes P``
    The stack's floor: FastAPI on uvicorn (uvloop, httptools) forwarding the request body to
    the upstream with one shared aiohttp session and returning its answer. A gateway written
    on this stack cannot be faster than this.
``python -m bench.servers bare --port N --redis URL --processes P``
    FastAPI + redis-py: ``GET /hash/{key}`` answers one ``HGETALL`` as JSON; the floor of
    ``GET /v1/jobs/{id}``.
``python -m bench.servers keeper --port N --upstream URL --redis URL --blobs DIR --processes P``
    The floor plus the least a job's guarantees cost (:func:`keeper_app`): the three atomic
    writes of a synchronous job, as the gateway makes them, and its output kept as a file by
    the gateway's own blob store. No gateway can do a synchronous job with those guarantees
    on this stack for less; the gateway's distance to it is its own code's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response

IMAGEPIG_PATH = "/_sandbox/imagepig/"


def tiny_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.linear_gradient("L").resize((32, 32)).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def imagepig_answer() -> bytes:
    return json.dumps(
        {
            "image_data": base64.b64encode(tiny_png()).decode(),
            "mime_type": "image/png",
            "seed": 42,
            "started_at": "2026-01-01T00:00:00.000000Z",
            "completed_at": "2026-01-01T00:00:00.000001Z",
        }
    ).encode()


def _response(body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class _Upstream(asyncio.Protocol):
    POST = _response(imagepig_answer())
    GET = _response(b"{}")

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 :].split(b"\r\n", 1)[0])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.transport.write(self.POST if head.startswith(b"post") else self.GET)


def upstream(args: argparse.Namespace) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Upstream, args.host, args.port, backlog=1024)
        await server.serve_forever()

    uvloop.run(main())


def _upstream_session(
    session: dict[str, Any], started: Callable[[], Awaitable[object]] | None = None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan keeping one shared aiohttp session in ``session["s"]`` (the floor's and the
    keeper's way to the upstream), after ``started`` when given."""
    import aiohttp

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=512)
        session["s"] = aiohttp.ClientSession(connector=connector)
        if started is not None:
            await started()
        yield
        await session["s"].close()

    return lifespan


def floor_app(upstream_url: str) -> Any:
    session: dict[str, Any] = {}
    app = FastAPI(lifespan=_upstream_session(session))
    target = upstream_url.rstrip("/") + IMAGEPIG_PATH

    @app.post("/forward")
    async def forward(request: Request) -> Response:
        body = await request.body()
        async with session["s"].post(
            target, data=body, headers={"Content-Type": "application/json"}
        ) as answer:
            content = await answer.read()
            return Response(content, answer.status, media_type="application/json")

    return app


def bare_app(redis_url: str) -> Any:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url, decode_responses=True)
    app = FastAPI()

    @app.get("/hash/{key}")
    async def read(key: str) -> Response:
        return Response(json.dumps(await redis.hgetall(key)), media_type="application/json")

    return app


KEEPER_PREFIX = "bench:keeper:"
"""The keeper's keys in the gateway's Redis: none of the gateway's own."""

_KEEPER_CREATE = """
local used = redis.call('INCR', KEYS[2])
if used == 1 then redis.call('EXPIRE', KEYS[2], 60) end
if tonumber(redis.call('GET', KEYS[3]) or '0') < tonumber(ARGV[2]) then return 0 end
redis.call('DECRBY', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'status', 'running', 'lease', ARGV[3])
redis.call('EXPIRE', KEYS[1], 3600)
redis.call('ZADD', KEYS[4], ARGV[4], KEYS[1])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[6])
return 1
"""
_KEEPER_FINISH = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
local used = tonumber(redis.call('HGET', KEYS[5], 'used') or '0')
if used + tonumber(ARGV[4]) > tonumber(ARGV[8]) then return -1 end
redis.call('HINCRBY', KEYS[5], 'used', ARGV[4])
redis.call('ZREM', KEYS[6], ARGV[5])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[7])
redis.call('SET', KEYS[7], ARGV[9], 'EX', 3600)
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'status', 'succeeded', 'lease', '')
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('INCRBY', KEYS[3], ARGV[3])
redis.call('PUBLISH', KEYS[4], KEYS[1])
return 1
"""


def keeper_app(upstream_url: str, redis_url: str, blob_root: str) -> Any:
    """The floor plus the least a synchronous job's guarantees cost on this stack.

    Per request, in the gateway's order: one script that counts the tenant's rate, reserves
    the price from its balance, records the job leased (before the upstream hears of it, so
    a crash after the call is known) and schedules its output's deletion at 0 bytes; the
    upstream call (aiohttp, as the floor); the output's bytes, written by the gateway's
    ``LocalBlobStore`` under the scheduled id; one script that ends the job if its lease still
    holds, counts the output against the storage quota, reschedules its deletion, writes its
    record, settles the price and publishes the change. Scripts go through the gateway's
    :class:`~app.store.scripts.Script` (redis-py, the cheapest way it offers), and carry
    records the size of the gateway's. Nothing else: no authentication, validation, routing,
    accounting rules, metrics or rendering.
    """
    from redis.asyncio import Redis

    from app.blobs.local import LocalBlobStore
    from app.domain.models import new_artifact_id, new_job_id
    from app.store.scripts import Script

    redis = Redis.from_url(redis_url)
    create, finish = (Script(redis, source) for source in (_KEEPER_CREATE, _KEEPER_FINISH))
    blobs = LocalBlobStore(Path(blob_root))
    session: dict[str, Any] = {}
    key = {name: KEEPER_PREFIX + name for name in ("rate", "credits", "leases", "usage", "due")}
    padding = "x" * 1200  # a job's stored record is about 1.5 KB

    async def started() -> None:
        await redis.set(key["credits"], 10**15)

    app = FastAPI(lifespan=_upstream_session(session, started))
    target = upstream_url.rstrip("/") + IMAGEPIG_PATH

    @app.post("/keep")
    async def keep(request: Request) -> Response:
        body = await request.body()
        job_id, lease = new_job_id(), os.urandom(8).hex()
        now = int(time.time() * 1000)
        job_key = f"{KEEPER_PREFIX}job:{job_id}"
        record = json.dumps(
            {"id": job_id, "status": "running", "input": body.decode(), "pad": padding}
        )
        blob_id = new_artifact_id()
        job_keys = [job_key, key["rate"], key["credits"], key["leases"], key["due"]]
        early = f"{blob_id}|0"
        if not await create(keys=job_keys, args=[record, 5, lease, now + 30_000, now, early]):
            return Response(status_code=402)
        async with session["s"].post(
            target, data=body, headers={"Content-Type": "application/json"}
        ) as answer:
            image = base64.b64decode(json.loads(await answer.read())["image_data"])
        await blobs.put(blob_id, image, "image/png")
        meta = json.dumps({"id": blob_id, "size": len(image), "type": "image/png"})
        done = json.dumps(
            {"id": job_id, "status": "succeeded", "artifact": blob_id, "pad": padding}
        )
        finish_keys = [job_key, key["leases"], key["credits"], KEEPER_PREFIX + "events"]
        finish_keys += [key["usage"], key["due"], f"{KEEPER_PREFIX}file:{blob_id}"]
        kept = f"{blob_id}|{len(image)}"
        finish_args: list[str | int] = [done, lease, 0, len(image), early, now, kept, 1 << 40, meta]
        finished = await finish(keys=finish_keys, args=finish_args)
        if finished == -1:
            await blobs.delete(blob_id)
            return Response(status_code=413)
        if not finished:
            return Response(status_code=409)
        return Response(done, media_type="application/json")

    return app


def _serve(factory: str, args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(
        f"bench.servers:{factory}",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.processes,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def _floor_from_env() -> Any:
    return floor_app(os.environ["BENCH_UPSTREAM_URL"])


def _bare_from_env() -> Any:
    return bare_app(os.environ["BENCH_REDIS_URL"])


def _keeper_from_env() -> Any:
    return keeper_app(
        os.environ["BENCH_UPSTREAM_URL"], os.environ["BENCH_REDIS_URL"], os.environ["BENCH_BLOBS"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.servers")
    parser.add_argument("kind", choices=["upstream", "floor", "bare", "keeper"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--upstream")
    parser.add_argument("--redis")
    parser.add_argument("--blobs")
    args = parser.parse_args()
    if args.kind == "upstream":
        upstream(args)
    elif args.kind == "floor":
        os.environ["BENCH_UPSTREAM_URL"] = args.upstream
        _serve("_floor_from_env", args)
    elif args.kind == "keeper":
        os.environ.update(
            BENCH_UPSTREAM_URL=args.upstream, BENCH_REDIS_URL=args.redis, BENCH_BLOBS=args.blobs
        )
        _serve("_keeper_from_env", args)
    else:
        os.environ["BENCH_REDIS_URL"] = args.redis
        _serve("_bare_from_env", args)


if __name__ == "__main__":
    main()
