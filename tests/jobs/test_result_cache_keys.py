"""What makes two requests the same work, and what a request's Cache-Control allows."""

from __future__ import annotations

import pytest

from app.domain.media import ImageInput
from app.domain.operations import GenerateImage, ImageKeywords, Operation, RemoveBackground
from app.jobs.result_cache import GENERATIVE, CachePolicy, cache_key, cacheable

FILE = ImageInput(file_id="file_abc")


def key(tenant: str = "t1", digest: str = "aa", providers: list[str] | None = None) -> str:
    params = ImageKeywords(image=FILE, num_keywords=10)
    return cache_key(tenant, Operation.image_keywords, params, {"image": digest}, providers)


def test_the_same_bytes_and_parameters_are_the_same_key_whatever_the_file_id() -> None:
    other_file = ImageKeywords(image=ImageInput(file_id="file_other"), num_keywords=10)
    same = cache_key("t1", Operation.image_keywords, other_file, {"image": "aa"}, None)
    assert key() == same


@pytest.mark.parametrize(
    "different",
    [
        key(tenant="t2"),  # never shared between tenants
        key(digest="bb"),  # other bytes
        key(providers=["everypixel"]),  # a provider chosen
    ],
)
def test_anything_else_is_another_key(different: str) -> None:
    assert key() != different


def test_parameters_left_out_differ_from_parameters_given_at_their_default() -> None:
    given = ImageKeywords(image=FILE, num_keywords=10)
    left_out = ImageKeywords(image=FILE)
    assert cache_key("t", Operation.image_keywords, given, {"image": "a"}, None) != cache_key(
        "t", Operation.image_keywords, left_out, {"image": "a"}, None
    )


def test_generation_without_a_seed_is_cached_only_when_asked() -> None:
    assert Operation.image_generate in GENERATIVE
    assert Operation.image_remove_background not in GENERATIVE
    unseeded = GenerateImage(prompt="a cat")
    seeded = GenerateImage(prompt="a cat", seed=7)
    assert not cacheable(Operation.image_generate, unseeded, CachePolicy())
    assert cacheable(Operation.image_generate, unseeded, CachePolicy.from_header("max-age=60"))
    assert cacheable(Operation.image_generate, seeded, CachePolicy())


def test_media_by_url_is_never_cached() -> None:
    by_url = RemoveBackground(image=ImageInput(url="https://example.com/a.png"))
    assert not cacheable(Operation.image_remove_background, by_url, CachePolicy())
    by_file = RemoveBackground(image=FILE)
    assert cacheable(Operation.image_remove_background, by_file, CachePolicy())


@pytest.mark.parametrize(
    ("header", "lookup", "store", "max_age"),
    [
        (None, True, True, None),
        ("no-cache", False, True, None),
        ("no-store", False, False, None),
        ("max-age=30", True, True, 30),
        ('private, max-age="45", no-cache', False, True, 45),
        ("max-age=" + "9" * 50, True, True, None),  # nonsense is ignored, never an error
        ("garbage;;=", True, True, None),
    ],
)
def test_cache_control(header: str | None, lookup: bool, store: bool, max_age: int | None) -> None:
    policy = CachePolicy.from_header(header)
    assert (policy.lookup, policy.store, policy.max_age_s) == (lookup, store, max_age)


def test_max_age_narrows_the_tenants_window_and_zero_is_off() -> None:
    assert CachePolicy().window_s(3600) == 3600
    assert CachePolicy.from_header("max-age=60").window_s(3600) == 60
    assert CachePolicy.from_header("max-age=99999").window_s(3600) == 3600
    assert CachePolicy.from_header("max-age=60").window_s(0) == 0
