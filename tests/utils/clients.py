"""HTTP clients the end-to-end tests talk to a gateway process with."""

from __future__ import annotations

from typing import Any

import httpx

from app.config import SANDBOX_TENANT_KEY
from tests.utils.deadlines import REQUEST_S
from tests.utils.processes import ADMIN_TOKEN, Process


def tenant_client(gateway: Process, key: str = SANDBOX_TENANT_KEY) -> httpx.AsyncClient:
    """A client of ``gateway`` with a tenant's API key (the sandbox tenant's by default)."""
    return httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=REQUEST_S
    )


def load_limits(connections: int) -> httpx.Limits:
    """The pool of a load test's client of one server: ``connections`` connections, which its
    concurrent requests share (a request waits for a free one), kept alive with no expiry.

    httpcore (1.0.9) hands a free connection to a request as soon as one is free (for a
    request that was waiting, when another request's answer is read), but the connection
    still counts as idle until that request's task runs and starts on it; a pass over the
    pool meanwhile closes it if its keep-alive expiry (httpx's 5 s) has passed, handed out
    or not (encode/httpcore#1110). A pass that closes several connections awaits each close
    in turn, and the request can start on the connection in between: its socket is then
    closed under it while it waits for the answer (``httpx.ReadError`` from anyio's
    ``ClosedResourceError``), with nothing wrong on the server. A test process starved of
    CPU easily leaves a woken task 5 s before it runs. Without an expiry, the pool of a client
    of one server closes a connection only once the server has closed it (the test gateways
    keep an idle one ``KEEP_ALIVE_S``), or when the client is closed.
    """
    return httpx.Limits(max_connections=connections, keepalive_expiry=None)


def admin_client(gateway: Process) -> httpx.AsyncClient:
    """A client of ``gateway`` with the admin token."""
    return tenant_client(gateway, ADMIN_TOKEN)


async def new_tenant(
    admin: httpx.AsyncClient, name: str, credits: int = 0, **settings: Any
) -> tuple[dict[str, Any], str]:
    """A tenant made through the admin API, with one API key and ``credits`` granted: its
    record as the API answered it, and the key."""
    created = await admin.post("/admin/tenants", json={"name": name, **settings})
    assert created.status_code == 201, created.text
    tenant: dict[str, Any] = created.json()
    issued = await admin.post(f"/admin/tenants/{tenant['id']}/keys")
    assert issued.status_code == 201, issued.text
    if credits:
        granted = await admin.post(
            f"/admin/tenants/{tenant['id']}/credits", json={"amount": credits, "reason": "test"}
        )
        assert granted.status_code == 200, granted.text
    return tenant, str(issued.json()["key"])
