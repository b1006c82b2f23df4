"""HTTP clients the end-to-end tests talk to a gateway process with."""

from __future__ import annotations

import httpx

from app.config import SANDBOX_TENANT_KEY
from tests.utils.deadlines import REQUEST_S
from tests.utils.processes import Process


def tenant_client(gateway: Process, key: str = SANDBOX_TENANT_KEY) -> httpx.AsyncClient:
    """A client of ``gateway`` with a tenant's API key (the sandbox tenant's by default)."""
    return httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=REQUEST_S
    )
