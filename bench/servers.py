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
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


def floor_app(upstream_url: str) -> Any:
    import aiohttp

    session: dict[str, aiohttp.ClientSession] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=512)
        session["s"] = aiohttp.ClientSession(connector=connector)
        yield
        await session["s"].close()

    app = FastAPI(lifespan=lifespan)
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.servers")
    parser.add_argument("kind", choices=["upstream", "floor", "bare"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--upstream")
    parser.add_argument("--redis")
    args = parser.parse_args()
    if args.kind == "upstream":
        upstream(args)
    elif args.kind == "floor":
        os.environ["BENCH_UPSTREAM_URL"] = args.upstream
        _serve("_floor_from_env", args)
    else:
        os.environ["BENCH_REDIS_URL"] = args.redis
        _serve("_bare_from_env", args)


if __name__ == "__main__":
    main()
