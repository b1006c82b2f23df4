"""``mediagate``: serve the API, run workers or the sandbox, administer tenants, print the spec."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import uvicorn
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from app import logs
from app.config import Settings, get_settings
from app.health import serve_worker_http
from app.metrics import Metrics, multiprocess_metrics
from app.serving import PROTOCOL

DEFAULT_PORT = 8000
SANDBOX_PORT = 8100


def _settings_for(host: str, port: int) -> Settings:
    settings = get_settings()
    if "public_base_url" not in settings.model_fields_set:  # not given (environment or YAML)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        settings = settings.model_copy(update={"public_base_url": f"http://{shown}:{port}"})
    return settings


def serve(args: argparse.Namespace) -> None:
    """Run the API (and a worker) in ``--processes`` processes sharing one Redis.

    Without ``MEDIAGATE_REDIS_URL`` the embedded Redis is started here, before the server
    processes, which all connect to it; it stops when ``serve`` exits.
    """
    from app.gateway import signing_key
    from app.store.embedded import EmbeddedRedis

    settings = _settings_for(args.host, args.port)
    with ExitStack() as stack:
        if settings.redis_url is None:
            server = EmbeddedRedis(settings.data_dir)
            os.environ["MEDIAGATE_REDIS_URL"] = server.start()
            stack.callback(server.stop)
        _pin_upstream_callbacks(url_given="public_base_url" in get_settings().model_fields_set)
        os.environ["MEDIAGATE_PUBLIC_BASE_URL"] = settings.public_base_url
        signing_key(settings)  # created once here, not raced by the server processes
        stack.enter_context(multiprocess_metrics(args.processes))  # before they start
        if args.worker_processes > 0:
            os.environ["MEDIAGATE_RUN_WORKER"] = "false"  # the server processes only serve
            for index in range(args.worker_processes):
                stack.enter_context(_worker_process(args, settings, index))
        get_settings.cache_clear()  # with one process the app is built here: read them anew
        uvicorn.run(
            "app.main:create_served_app",
            factory=True,
            workers=args.processes,
            **_server_options(args),
        )


@contextmanager
def _worker_process(
    args: argparse.Namespace, settings: Settings, index: int
) -> Iterator[subprocess.Popen[bytes]]:
    """``mediagate worker`` beside the server processes, at ``--worker-nice`` below them:
    under CPU contention the kernel gives accepting and reading jobs the larger share, and
    the worker runs jobs on what is left (all of it when requests are few). Its /metrics
    port is the configured one plus its index (0: off)."""
    base = settings.worker_metrics_port
    command = [sys.executable, "-m", "app.cli", "--log-level", args.log_level, "worker"]
    command += ["--metrics-port", str(base + index if base else 0)]
    env = {k: v for k, v in os.environ.items() if k != "MEDIAGATE_RUN_WORKER"}
    nice = args.worker_nice
    worker = subprocess.Popen(command, env=env, preexec_fn=lambda: os.nice(nice))
    try:
        yield worker
    finally:
        worker.terminate()  # the worker lets running steps finish (10 s), then stops
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _pin_upstream_callbacks(*, url_given: bool) -> None:
    """Keep upstream callbacks off in the server processes unless the user asked for them.

    Unset, ``upstream_callbacks`` is on when the public URL was given explicitly; ``serve``
    always exports one (computed from host and port when not given), which the server
    processes would take as explicit. So when the user gave neither, they are told "off".
    """
    if not url_given and get_settings().upstream_callbacks is None:
        os.environ["MEDIAGATE_UPSTREAM_CALLBACKS"] = "false"


def _server_options(args: argparse.Namespace) -> dict[str, Any]:
    """uvloop and httptools (guarded against slow clients, ``app.serving``), no access log
    (requests are counted in metrics instead)."""
    return {
        "host": args.host,
        "port": args.port,
        "loop": "uvloop",
        "http": PROTOCOL,
        # no route is a WebSocket: an upgrade request is served as HTTP (app.serving)
        "ws": "none",
        "timeout_keep_alive": get_settings().http_keep_alive_s,
        "log_level": args.log_level,
        "access_log": False,
        # a process still starting on a busy machine is not mistaken for a hung one
        "timeout_worker_healthcheck": 30,
        # uvicorn's loggers go through the process's JSON handler (app.logs)
        "log_config": None,
    }


def sandbox(args: argparse.Namespace) -> None:
    from app.sandbox.app import create_sandbox_app
    from app.sandbox.fetch import SandboxAccess
    from app.sandbox.timing import SandboxTiming

    settings = get_settings()
    app = create_sandbox_app(
        SandboxTiming.from_settings(settings), SandboxAccess.from_settings(settings)
    )
    uvicorn.run(app, **_server_options(args))


def worker(args: argparse.Namespace) -> None:
    settings = get_settings()
    host = args.metrics_host or settings.worker_metrics_host
    port = settings.worker_metrics_port if args.metrics_port is None else args.metrics_port
    asyncio.run(_run_worker(settings, host, port))


async def _run_worker(settings: Settings, metrics_host: str, metrics_port: int) -> None:
    from app.gateway import build_gateway, freeze_heap, redis_url
    from app.store.connection import connect
    from app.upstream_http import upstream_client

    async with AsyncExitStack() as stack:
        redis = connect(redis_url(settings, stack, embed=False), timeout_s=settings.redis_timeout_s)
        stack.push_async_callback(redis.aclose)
        http = upstream_client()
        stack.push_async_callback(http.aclose)
        gateway = await build_gateway(settings, redis, http, Metrics(CollectorRegistry()))
        stack.push_async_callback(gateway.aclose)
        await stack.enter_async_context(
            serve_worker_http(gateway.metrics, gateway.jobs, metrics_host, metrics_port)
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(gateway.worker.stop()))
        logging.getLogger("mediagate").info("worker %s started", gateway.worker.id)
        freeze_heap()
        await gateway.worker.run()


def openapi(args: argparse.Namespace) -> None:
    from app.main import create_app

    spec = create_app(Settings(sandbox=False)).openapi()
    json.dump(spec, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def admin(args: argparse.Namespace) -> None:
    """Call the admin API of a running gateway and print its JSON answer."""
    import httpx

    method, path, body = _admin_request(args)
    response = httpx.request(
        method,
        args.url.rstrip("/") + path,
        json=body,
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=30,
    )
    if response.content:
        json.dump(response.json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    if response.is_error:
        raise SystemExit(1)


def _admin_request(args: argparse.Namespace) -> tuple[str, str, dict[str, object] | None]:
    action = args.admin_command
    if action == "create-tenant":
        body: dict[str, object] = {"name": args.name}
        if args.rpm is not None:
            body["rate_limit_rpm"] = args.rpm
        if args.concurrency is not None:
            body["max_concurrent_jobs"] = args.concurrency
        return "POST", "/admin/tenants", body
    if action == "list-tenants":
        return "GET", "/admin/tenants", None
    if action in ("suspend", "activate"):
        status = "suspended" if action == "suspend" else "active"
        return "PATCH", f"/admin/tenants/{args.tenant}", {"status": status}
    if action == "create-key":
        return "POST", f"/admin/tenants/{args.tenant}/keys", None
    if action == "revoke-key":
        return "DELETE", f"/admin/keys/{args.key_id}", None
    if action == "grant":
        body = {"amount": args.amount, "reason": args.reason}
        return "POST", f"/admin/tenants/{args.tenant}/credits", body
    if action == "reconcile":
        query = {"since": _moment(args.since)}
        if args.until is not None:
            query["until"] = _moment(args.until)
        return "GET", f"/admin/reconcile?{urlencode(query)}", None
    raise SystemExit(f"unknown admin action {action}")


_AGO = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _moment(value: str) -> str:
    """RFC 3339 as given, or a time ago (``90m``, ``24h``, ``7d``) as RFC 3339 UTC."""
    value = value.strip()
    if value[:-1].isdigit() and value[-1:] in _AGO:
        ago = timedelta(seconds=int(value[:-1]) * _AGO[value[-1]])
        return (datetime.now(UTC) - ago).isoformat()
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        raise SystemExit(f"not a time: {value!r} (RFC 3339, or an age such as 24h)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mediagate",
        description="One REST API in front of AI media providers. Settings come from "
        "MEDIAGATE_* environment variables (see README).",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("serve", help="the API, running jobs in-process or in worker processes")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument(
        "--processes",
        type=int,
        default=int(os.environ.get("MEDIAGATE_PROCESSES", "1")),
        help="server processes, each with its own worker (default 1; one per core is typical)",
    )
    p.add_argument(
        "--worker-processes",
        type=int,
        default=int(os.environ.get("MEDIAGATE_WORKER_PROCESSES", "0")),
        help="run jobs in this many worker processes of their own instead of in the server "
        "processes (default 0: in each server process)",
    )
    p.add_argument(
        "--worker-nice",
        type=int,
        choices=range(20),
        default=10,
        metavar="0-19",
        help="how far below the server processes the worker processes run (Linux nice; default 10)",
    )
    p.set_defaults(func=serve)

    p = commands.add_parser("worker", help="a worker alone (run any number of them)")
    p.add_argument(
        "--metrics-host",
        help="address of its /metrics, /healthz and /readyz "
        "(default MEDIAGATE_WORKER_METRICS_HOST or 127.0.0.1)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="port of its /metrics, /healthz and /readyz; 0 turns them off "
        "(default MEDIAGATE_WORKER_METRICS_PORT or 9100)",
    )
    p.set_defaults(func=worker)

    p = commands.add_parser("sandbox", help="the provider emulators alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=SANDBOX_PORT)
    p.set_defaults(func=sandbox)

    p = commands.add_parser(
        "admin", help="tenants, keys, credits and reconciliation (calls the admin API)"
    )
    p.add_argument(
        "--url",
        default=os.environ.get("MEDIAGATE_PUBLIC_BASE_URL", f"http://127.0.0.1:{DEFAULT_PORT}"),
    )
    p.add_argument("--token", default=os.environ.get("MEDIAGATE_ADMIN_TOKEN", ""))
    actions = p.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    a = actions.add_parser("create-tenant", help="create a tenant")
    a.add_argument("name")
    a.add_argument("--rpm", type=int, help="requests per minute")
    a.add_argument("--concurrency", type=int, help="unfinished jobs at once")
    actions.add_parser("list-tenants", help="list tenants")
    for verb in ("suspend", "activate"):
        a = actions.add_parser(verb, help=f"{verb} a tenant")
        a.add_argument("tenant")
    a = actions.add_parser("create-key", help="issue an API key (printed once)")
    a.add_argument("tenant")
    a = actions.add_parser("revoke-key", help="revoke an API key")
    a.add_argument("key_id")
    a = actions.add_parser("grant", help="grant credits to a tenant")
    a.add_argument("tenant")
    a.add_argument("amount", type=int)
    a.add_argument("--reason", default="grant")
    a = actions.add_parser(
        "reconcile", help="upstream spend against tenant charges, per provider, in a window"
    )
    a.add_argument("--since", required=True, help="RFC 3339, or an age such as 24h or 7d")
    a.add_argument("--until", help="RFC 3339, or an age; now if absent")
    p.set_defaults(func=admin)

    p = commands.add_parser("openapi", help="print the OpenAPI document as JSON")
    p.set_defaults(func=openapi)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level)
    os.environ["MEDIAGATE_LOG_LEVEL"] = args.log_level  # for server processes it starts
    try:
        args.func(args)
    except ValidationError as exc:  # settings that may not run (e.g. weak production secrets)
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise SystemExit(f"mediagate: refusing to start: {problems}") from None


if __name__ == "__main__":
    main()
