"""Audio and video at intake (``jobs/media_rules.py``, ``jobs/intake.py``): sniffed, opened by
FFmpeg, probed for their length and held to what each provider of the plan takes, before any
credit is reserved. Real files, written by PyAV (``tests/utils/av_media.py``)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.api.body_limit import base64_size, body_rules
from app.domain.errors import ErrorCode, InvalidRequest
from app.domain.media import MediaKind
from app.domain.operations import ROUTES, Operation, VideoKeywords
from app.jobs import probe
from app.jobs.intake import check_media
from app.jobs.media_rules import AvSeen, av_seen, field_byte_limits, fit_plan
from app.jobs.prices.measure import SeenMedia, measure_request
from app.providers.base import Adapter
from app.providers.everypixel import EverypixelAdapter
from app.providers.media_limits import AVI, MP4, AvLimits
from app.providers.registry import ADAPTERS
from tests.utils import av_media

MB = 1024 * 1024
DEFAULT = 10 * MB
# ``fit_plan`` reads only an adapter's ``media_limits``, which the class carries: the class, and
# stand-ins with that one attribute, are given where it takes instances.
EVERYPIXEL = cast(Mapping[str, Adapter], {"everypixel": EverypixelAdapter})


def _seen(content_type: str, size: int, seconds: float | None = 10.0) -> dict[str, AvSeen]:
    kind = content_type.split("/")[0]
    return {"video": AvSeen("/video/data", kind, content_type, size, seconds)}


def _refusal(**kwargs: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        fit_plan(**kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [
        ("avi", "video/x-msvideo"),
        ("mpeg", "video/mpeg"),
        ("mp4", "video/mp4"),
        ("mov", "video/quicktime"),
        ("webm", "video/webm"),
    ],
)
def test_every_video_type_is_told_and_its_length_read(kind: str, content_type: str) -> None:
    content = av_media.video(kind, seconds=2.0)
    checked = check_media(content, MediaKind.video, "/video/data", DEFAULT)
    assert checked.content_type == content_type
    assert probe.duration_s(content, content_type) == pytest.approx(2.0, abs=0.4)


@pytest.mark.parametrize("kind", ["mp3", "ogg", "flac", "m4a", "wav"])
def test_every_audio_type_has_its_length_read(kind: str) -> None:
    content = av_media.audio(kind, seconds=1.5)
    checked = check_media(content, MediaKind.audio, "/audio/data", DEFAULT)
    assert probe.duration_s(content, checked.content_type) == pytest.approx(1.5, abs=0.1)


@pytest.mark.parametrize(
    "content",
    [
        av_media.video("avi") + b"junk after the file",
        av_media.video("avi")[:2000],  # cut short
        b"RIFF\x0c\x00\x00\x00AVI LIST",  # a header and nothing FFmpeg can read
        b"\x00\x00\x01\xba" + bytes(64),  # an MPEG pack header and no stream
    ],
)
def test_an_avi_or_mpeg_ffmpeg_cannot_read_is_refused(content: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_media(content, MediaKind.video, "/video/data", DEFAULT)
    assert caught.value.code is ErrorCode.invalid_media
    assert caught.value.errors[0].pointer == "/video/data"


def test_a_picture_has_no_length() -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    assert probe.duration_s(png, "image/png") is None


def test_everypixel_video_keywording_takes_an_avi_and_a_40_mb_mp4() -> None:
    for content_type, size in ((AVI, 50_000), (MP4, 40 * 1000 * 1000), (MP4, 100_000_000)):
        plan = fit_plan(
            EVERYPIXEL,
            ["everypixel"],
            True,
            Operation.video_keywords,
            _seen(content_type, size),
            DEFAULT,
        )
        assert plan == ["everypixel"]


def test_what_everypixel_does_not_take_is_refused_with_the_inputs_pointer() -> None:
    common = {"adapters": EVERYPIXEL, "plan": ["everypixel"], "pinned": True}
    webm = _refusal(
        **common,
        operation=Operation.video_keywords,
        seen=_seen("video/webm", 5000),
        default_max=DEFAULT,
    )
    assert (webm.code, webm.status) == (ErrorCode.invalid_media, 422)
    assert webm.errors[0].pointer == "/video/data"
    assert "MP4, MPEG, MOV, AVI" in webm.detail
    large = _refusal(
        **common,
        operation=Operation.video_keywords,
        seen=_seen(MP4, 100_000_001),
        default_max=DEFAULT,
    )
    assert (large.code, large.status) == (ErrorCode.media_too_large, 413)
    assert large.errors[0].pointer == "/video/data"


def test_an_input_no_row_speaks_of_keeps_the_gateways_types_and_media_limit() -> None:
    common = {"adapters": EVERYPIXEL, "plan": ["everypixel"], "pinned": True}
    seen = {"target": AvSeen("/target/data", "video", AVI, 50_000, 3.0)}
    avi = _refusal(**common, operation=Operation.video_swap_face, seen=seen, default_max=DEFAULT)
    assert avi.code is ErrorCode.invalid_media and avi.errors[0].pointer == "/target/data"
    seen = {"target": AvSeen("/target/file_id", "video", MP4, DEFAULT + 1, 3.0)}
    big = _refusal(**common, operation=Operation.video_swap_face, seen=seen, default_max=DEFAULT)
    assert big.code is ErrorCode.media_too_large and big.errors[0].pointer == "/target/file_id"
    seen = {"target": AvSeen("/target/data", "video", MP4, DEFAULT, 3.0)}
    assert fit_plan(EVERYPIXEL, ["everypixel"], True, Operation.video_swap_face, seen, DEFAULT)


def _adapter(row: AvLimits | None) -> Adapter:
    rows = {Operation.video_keywords: {"video": row}} if row else {}
    return cast(Adapter, SimpleNamespace(media_limits=rows))


STRICT = AvLimits(formats=(MP4,), cite=None, max_bytes=1000)
WIDE = AvLimits(formats=(MP4, AVI), cite=None, max_bytes=10_000)
TIMED = AvLimits(formats=(MP4,), cite=None, min_duration_s=5, max_duration_s=60)


def test_providers_that_do_not_take_the_input_leave_the_plan() -> None:
    adapters = {"strict": _adapter(STRICT), "wide": _adapter(WIDE)}
    op = Operation.video_keywords
    plan = ["strict", "wide"]
    assert fit_plan(adapters, plan, False, op, _seen(MP4, 500), DEFAULT) == plan
    assert fit_plan(adapters, plan, False, op, _seen(MP4, 5000), DEFAULT) == ["wide"]
    assert fit_plan(adapters, plan, False, op, _seen(AVI, 500), DEFAULT) == ["wide"]
    # the client chose the first: its refusal is the answer
    chosen = _refusal(
        adapters=adapters,
        plan=plan,
        pinned=True,
        operation=op,
        seen=_seen(AVI, 500),
        default_max=DEFAULT,
    )
    assert "strict" in chosen.detail
    # nobody takes it: the first one's refusal
    nobody = _refusal(
        adapters=adapters,
        plan=plan,
        pinned=False,
        operation=op,
        seen=_seen(AVI, 50_000),
        default_max=DEFAULT,
    )
    assert nobody.code is ErrorCode.invalid_media and "strict" in nobody.detail


@pytest.mark.parametrize(
    ("seconds", "taken"),
    [(10.0, True), (5.0, True), (60.0, True), (4.9, False), (61.0, False), (None, False)],
)
def test_a_documented_duration_is_held_to_and_an_unreadable_one_refused(
    seconds: float | None, taken: bool
) -> None:
    adapters = {"timed": _adapter(TIMED)}
    args = (adapters, ["timed"], True, Operation.video_keywords, _seen(MP4, 500, seconds), DEFAULT)
    if taken:
        assert fit_plan(*args) == ["timed"]
    else:
        with pytest.raises(InvalidRequest) as caught:
            fit_plan(*args)
        assert caught.value.code is ErrorCode.invalid_media
        assert caught.value.errors[0].pointer == "/video/data"


def test_the_probed_length_prices_the_request() -> None:
    content = av_media.video("avi", seconds=3.0)
    seen = {"video": SeenMedia(AVI, content, pointer="/video/data")}
    # model_construct skips validation; pydantic's mypy plugin still asks for every field
    measure = measure_request(VideoKeywords.model_construct(), seen)  # type: ignore[call-arg]
    assert measure.seconds == pytest.approx(3.0, abs=0.01)
    assert av_seen(seen)["video"] == AvSeen("/video/data", "video", AVI, len(content), None)


def test_the_body_limit_follows_the_largest_input_a_provider_takes() -> None:
    larger = field_byte_limits(ADAPTERS.values(), DEFAULT)
    assert larger == {Operation.video_keywords: {"video": 100_000_000}}
    rules = body_rules(DEFAULT, larger)
    keywords = rules.find("POST", ROUTES[Operation.video_keywords]).limit
    assert base64_size(100_000_000) < keywords < base64_size(100_000_000) * 1.1
    # every other route, and uploads, keep the media limit
    plain = body_rules(DEFAULT)
    for operation, route in ROUTES.items():
        if operation is not Operation.video_keywords:
            assert rules.find("POST", route).limit == plain.find("POST", route).limit
    assert rules.find("POST", "/v1/files").limit == plain.find("POST", "/v1/files").limit
