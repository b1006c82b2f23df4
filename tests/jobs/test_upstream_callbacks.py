"""Callback tokens (mint, verify, tampering), the callback URL, and when callbacks are on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app import cli
from app.config import Settings, get_settings
from app.domain.models import new_job_id
from app.jobs.upstream_callbacks import OTHER_PROVIDER, CallbackTokens, UpstreamCallbacks

KEY = b"k" * 32


def callbacks(key: bytes = KEY) -> UpstreamCallbacks:
    store = None  # verify and url never touch the store
    return UpstreamCallbacks(
        CallbackTokens(key),
        store,  # type: ignore[arg-type]
        "https://gw.example/",
        ["everypixel", "imagepipeline"],
    )


def test_a_minted_token_verifies_for_its_provider_only() -> None:
    tokens = CallbackTokens(KEY)
    job_id = new_job_id()
    token = tokens.mint("imagepipeline", job_id)
    assert token.startswith(f"{job_id}.")
    assert tokens.verify("imagepipeline", token) == job_id
    assert tokens.verify("everypixel", token) is None
    assert CallbackTokens(b"another key").verify("imagepipeline", token) is None


def test_a_token_is_bound_to_its_job() -> None:
    tokens = CallbackTokens(KEY)
    token = tokens.mint("everypixel", new_job_id())
    mac = token.rpartition(".")[2]
    assert tokens.verify("everypixel", f"{new_job_id()}.{mac}") is None


@pytest.mark.parametrize("position", [0, 10, 21])
def test_a_tampered_mac_is_refused(position: int) -> None:
    tokens = CallbackTokens(KEY)
    token = tokens.mint("everypixel", new_job_id())
    job_id, _, mac = token.rpartition(".")
    flipped = "A" if mac[position] != "A" else "B"
    tampered = mac[:position] + flipped + mac[position + 1 :]
    assert tokens.verify("everypixel", f"{job_id}.{tampered}") is None


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        ".",
        "job_1",
        "job_1.",
        ".abcdefghijklmnopqrstuv",
        "art_0123.abcdefghijklmnopqrstuv",
        "job_0123.abcdefghijklmnopqrstu",  # one character short
        "job_0123.abcdefghijklmnopqrstuvw",  # one too many
        "job_0123.abcdefghijklmnopqrstu=",
        "job_01\n23.abcdefghijklmnopqrstuv",
        "job_0123.abcdéfghijklmnopqrstu",
        "job_0123.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuv",
    ],
)
def test_garbage_is_refused(garbage: str) -> None:
    assert CallbackTokens(KEY).verify("everypixel", garbage) is None


def test_the_callback_url_carries_a_token_the_route_accepts() -> None:
    hub = callbacks()
    job_id = new_job_id()
    url = hub.url("imagepipeline", job_id)
    assert url is not None
    prefix = "https://gw.example/v1/providers/imagepipeline/callbacks/"
    assert url.startswith(prefix)
    token = url.removeprefix(prefix)
    assert hub.verify("imagepipeline", token) == job_id
    assert hub.verify("everypixel", token) is None


def test_providers_without_callbacks_have_no_valid_token() -> None:
    """Even a correctly minted token opens nothing for a provider that takes no callbacks."""
    hub = callbacks()
    job_id = new_job_id()
    token = hub.tokens.mint("pixelapi", job_id)
    assert hub.tokens.verify("pixelapi", token) == job_id
    assert hub.verify("pixelapi", token) is None
    assert hub.url("pixelapi", job_id) is None
    assert hub.label("pixelapi") == OTHER_PROVIDER
    assert hub.label("no such provider at all") == OTHER_PROVIDER
    assert hub.label("everypixel") == "everypixel"


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``MEDIAGATE_*`` variable, and every one set during the test removed after it."""
    monkeypatch.setenv("MEDIAGATE_UPSTREAM_CALLBACKS", "")  # remembered, so restored after
    for name in [n for n in os.environ if n.startswith("MEDIAGATE_")]:
        monkeypatch.delenv(name)


def test_callbacks_are_on_only_with_a_public_url_given_or_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clean_environment(monkeypatch)
    assert not Settings().upstream_callbacks_on
    given = Settings(public_base_url="http://127.0.0.1:8000")
    assert given.upstream_callbacks_on
    assert not given.model_copy(update={"upstream_callbacks": False}).upstream_callbacks_on
    assert Settings(upstream_callbacks=True).upstream_callbacks_on
    monkeypatch.setenv("MEDIAGATE_PUBLIC_BASE_URL", "https://gw.example")
    assert Settings().upstream_callbacks_on
    monkeypatch.setenv("MEDIAGATE_UPSTREAM_CALLBACKS", "false")
    assert not Settings().upstream_callbacks_on


@pytest.mark.parametrize(
    ("given", "exported"),
    [
        ({}, "false"),
        ({"MEDIAGATE_PUBLIC_BASE_URL": "https://gw.example"}, None),
        ({"MEDIAGATE_UPSTREAM_CALLBACKS": "true"}, "true"),
        ({"MEDIAGATE_UPSTREAM_CALLBACKS": "false"}, "false"),
    ],
)
def test_serve_tells_its_server_processes_when_callbacks_are_off(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str], exported: str | None
) -> None:
    """``serve`` always exports a public URL to its server processes; when the user gave
    neither that URL nor the setting, it exports the setting off with it."""
    _clean_environment(monkeypatch)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        cli._pin_upstream_callbacks(url_given="MEDIAGATE_PUBLIC_BASE_URL" in given)
        assert os.environ.get("MEDIAGATE_UPSTREAM_CALLBACKS") == exported
        monkeypatch.setenv("MEDIAGATE_PUBLIC_BASE_URL", "http://127.0.0.1:8123")
        assert Settings().upstream_callbacks_on is (exported != "false")
    finally:
        get_settings.cache_clear()


def test_serve_keeps_a_public_url_given_in_the_yaml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Given in the config file counts as given: ``serve`` neither replaces the URL with one
    made of its host and port nor turns callbacks off."""
    _clean_environment(monkeypatch)
    config = tmp_path / "mediagate.yaml"
    config.write_text("public_base_url: https://gw.example\n")
    monkeypatch.setenv("MEDIAGATE_CONFIG", str(config))
    get_settings.cache_clear()
    try:
        assert cli._settings_for("0.0.0.0", 9000).public_base_url == "https://gw.example"
        assert cli._settings_for("0.0.0.0", 9000).upstream_callbacks_on
    finally:
        get_settings.cache_clear()
