"""Real HTTP servers in background threads, for clients that build their own connections
(the providers' official libraries): the sandbox app, and a server of fixed input files."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn

from app.sandbox.timing import SandboxTiming
from tests.utils.net import free_port, wait_until_up
from tests.utils.sandbox import sandbox_app


@contextmanager
def serve_files(files: Mapping[str, tuple[bytes, str]]) -> Iterator[str]:
    """Base URL of a server answering ``GET <path>`` with ``files[path]`` (content, type)."""

    class Files(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            found = files.get(self.path)
            if found is None:
                self.send_error(404)
                return
            content, content_type = found
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def serve_sandbox(job_s: float) -> Iterator[str]:
    """Base URL of the sandbox app served by uvicorn in a background thread."""
    port = free_port()
    config = uvicorn.Config(
        sandbox_app(SandboxTiming(latency_s=0, job_s=job_s)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/_sandbox/healthz")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
