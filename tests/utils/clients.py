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
