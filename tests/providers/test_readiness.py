"""A provider that fetches its inputs from the gateway's public URL (ImagePipeline) is not
ready while that URL is loopback or private: routing skips it, ``GET /v1/providers`` and
``/readyz`` say why. The sandbox, whose emulators run beside the gateway, is exempt."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import pytest

from app.config import Settings
from app.domain.operations import Operation
from app.providers.registry import unreachable_public_url
from tests.utils.in_process import in_process_gateway
from tests.utils.net import with_db


@pytest.mark.parametrize(
    ("url", "reachable"),
    [
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("http://[::1]:8000", False),
        ("http://10.1.2.3", False),
        ("http://192.168.1.20:8080", False),
        ("http://169.254.169.254", False),
        ("http://gateway", False),
        ("http://media.internal", False),
        ("https://media.example.com", True),
        ("https://203.0.113.5", False),  # documentation range: reserved, not public
        ("https://8.8.8.8", True),
    ],
)
def test_what_the_internet_cannot_reach(url: str, reachable: bool) -> None:
    assert (unreachable_public_url(url) is None) is reachable


class Production(TypedDict):
    """Settings of a production gateway, given to ``in_process_gateway``."""

    sandbox: bool
    public_base_url: str
    providers: dict[str, dict[str, str]]


def _production(public_base_url: str) -> Production:
    providers = {
        name: {"base_url": f"https://{name}.example.com", "api_key": "k"}
        for name in ("everypixel", "pixelapi", "imagepig", "imagepipeline")
    } | {"perfectcorp": {"base_url": "https://perfect.example.com", "client_id": "c"}}
    return {"sandbox": False, "public_base_url": public_base_url, "providers": providers}


async def test_a_loopback_public_url_takes_imagepipeline_out_of_routing(
    redis_url: str, tmp_path: Path
) -> None:
    settings = _production("http://127.0.0.1:8000")
    async with in_process_gateway(with_db(redis_url, 12), tmp_path, **settings) as (gw, client):
        registry = gw.catalog.providers
        assert "imagepipeline" in registry.not_ready
        assert "imagepipeline" not in registry.bindings(Operation.image_swap_face)
        assert list(registry.bindings(Operation.audio_clone_voice)) == []
        assert "pixelapi" not in registry.not_ready
        listed = {p.name: p for p in await gw.catalog.provider_list()}  # GET /v1/providers
        assert listed["imagepipeline"].ready is False
        assert "loopback" in (listed["imagepipeline"].not_ready_reason or "")
        assert listed["pixelapi"].ready is True
        ready = (await client.get("/readyz")).json()
        assert "imagepipeline" in ready["providers_not_ready"]


async def test_a_public_url_or_the_sandbox_keeps_it_ready(redis_url: str, tmp_path: Path) -> None:
    settings = _production("https://media.example.com")
    async with in_process_gateway(with_db(redis_url, 12), tmp_path, **settings) as (gw, _):
        assert gw.catalog.providers.not_ready == {}
        assert "imagepipeline" in gw.catalog.providers.bindings(Operation.image_swap_face)
    sandbox = Settings(sandbox=True).public_base_url
    assert unreachable_public_url(sandbox) is not None  # loopback by default, yet:
    async with in_process_gateway(with_db(redis_url, 12), tmp_path, sandbox=True) as (gw, _):
        assert gw.catalog.providers.not_ready == {}
