"""Secrets: the admin API is off without a real token, and production refuses to start with a
default, empty or short secret, naming the setting (never showing the value)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TypedDict

import httpx
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from app.config import MIN_SECRET_CHARS, Settings
from tests.utils.deadlines import REQUEST_S, STARTUP_S
from tests.utils.in_process import in_process_gateway
from tests.utils.net import with_db
from tests.utils.processes import gateway

pytestmark = pytest.mark.e2e


class Secrets(TypedDict):
    """The settings production needs a real secret in."""

    admin_token: str
    signing_key: str
    key_pepper: str


STRONG: Secrets = {
    "admin_token": "a7f3c91e5b2d48f6a0c3e9d1b7f5a2c4e8",
    "signing_key": "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b",
    "key_pepper": "f1e2d3c4b5a69788796a5b4c3d2e1f0a9b",
}
WEAK = [
    "",
    "   ",
    "short",
    "x" * (MIN_SECRET_CHARS - 1),
    "local-compose-signing-key-change-me-0123456789",
]


def test_strong_secrets_pass_in_production() -> None:
    Settings(environment="production", **STRONG)


@pytest.mark.parametrize("name", sorted(STRONG))
@pytest.mark.parametrize("value", [None, *WEAK])
def test_production_refuses_a_weak_secret_by_name(name: str, value: str | None) -> None:
    given = {**STRONG, name: value} if value is not None else {**STRONG}
    if value is None:
        del given[name]
    with pytest.raises(ValidationError) as refused:
        # keys known only at run time, which mypy cannot tell from pydantic-settings' own
        # keyword arguments (``_env_file``…)
        Settings(environment="production", **given)  # type: ignore[arg-type]
    message = str(refused.value)
    assert f"MEDIAGATE_{name.upper()}" in message
    assert not value or value.strip() == "" or value not in message


def test_production_refuses_sandbox_mode() -> None:
    with pytest.raises(ValidationError, match="MEDIAGATE_SANDBOX"):
        Settings(environment="production", sandbox=True, **STRONG)


def test_the_server_refuses_to_start_naming_the_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
    env.update(
        MEDIAGATE_ENVIRONMENT="production",
        MEDIAGATE_DATA_DIR=str(tmp_path),
        MEDIAGATE_ADMIN_TOKEN=STRONG["admin_token"],
        MEDIAGATE_KEY_PEPPER=STRONG["key_pepper"],
    )
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_S,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode != 0
    assert "MEDIAGATE_SIGNING_KEY must be set" in done.stderr, done.stderr
    assert STRONG["admin_token"] not in done.stderr + done.stdout


async def test_an_empty_admin_token_keeps_the_admin_api_off(redis_url: str, tmp_path: Path) -> None:
    """``MEDIAGATE_ADMIN_TOKEN=""``, over real HTTP: no bearer value opens it."""
    with gateway(with_db(redis_url, 11), tmp_path, MEDIAGATE_ADMIN_TOKEN="") as proc:
        async with httpx.AsyncClient(base_url=proc.url, timeout=REQUEST_S) as anyone:
            for auth in ("", "Bearer", 'Bearer ""', "Bearer none", "Basic Og=="):
                response = await anyone.get("/admin/tenants", headers={"Authorization": auth})
                assert response.status_code == 401, (auth, response.text)
                assert "admin API is off" in response.json()["detail"]
            response = await anyone.get("/_sandbox/stats", headers={"Authorization": "Bearer"})
            assert response.status_code == 401


@pytest.mark.parametrize("length", [MIN_SECRET_CHARS - 1, MIN_SECRET_CHARS])
async def test_the_admin_token_needs_32_characters(
    redis_url: str, redis_client: Redis, tmp_path: Path, length: int
) -> None:
    token = "k" * length
    async with in_process_gateway(redis_url, tmp_path, admin_token=token) as (_, client):
        response = await client.get("/admin/tenants", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == (200 if length >= MIN_SECRET_CHARS else 401), response.text
