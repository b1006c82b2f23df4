"""Settings keyed by operation or provider: a key that names neither is refused at start-up,
with the key in the message, instead of being accepted and silently ignored."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import DOCUMENTED_JOB_DEADLINES, DOCUMENTED_SECONDS_PER_MEDIA_SECOND, Settings
from app.domain.models import Job, utcnow
from app.domain.operations import Operation
from app.jobs.runner import Deadlines


def _refused(**fields: object) -> str:
    with pytest.raises(ValidationError) as refused:
        Settings(**fields)  # type: ignore[arg-type]
    return str(refused.value)


def test_a_misspelt_operation_in_routing_is_refused_naming_it() -> None:
    message = _refused(routing={"image.genrate": ["imagepig"]})
    assert "routing.`image.genrate`.[key]" in message


def test_an_unknown_provider_in_routing_is_refused_naming_it() -> None:
    message = _refused(routing={"image.generate": ["imagepig", "pixelap"]})
    assert "routing.`image.generate`.1" in message and "pixelap" in message


def test_prices_refuse_an_unknown_operation_or_provider_or_a_negative_price() -> None:
    assert "prices.`image.upscal`.[key]" in _refused(prices={"image.upscal": {"imagepig": 3}})
    assert "prices.`image.upscale`.pig.[key]" in _refused(prices={"image.upscale": {"pig": 3}})
    assert "prices.`image.upscale`.imagepig" in _refused(prices={"image.upscale": {"imagepig": -1}})


def test_job_deadlines_refuse_an_unknown_operation_and_a_non_positive_time() -> None:
    assert "job_deadlines.`video.swapface`.[key]" in _refused(job_deadlines={"video.swapface": 60})
    assert "job_deadlines.`video.swap_face`" in _refused(job_deadlines={"video.swap_face": 0})


def test_valid_maps_arrive_as_operations_and_apply(tmp_path: Path) -> None:
    settings = Settings(
        routing={"image.generate": ["pixelapi", "imagepig"]},
        prices={"image.upscale": {"imagepig": 3}},
        job_deadlines={"video.swap_face": 7200},
    )
    assert settings.routing == {Operation.image_generate: ["pixelapi", "imagepig"]}
    assert settings.prices == {Operation.image_upscale: {"imagepig": 3}}
    deadlines = Deadlines(1800, {op.value: s for op, s in settings.job_deadlines.items()})
    assert deadlines.per_operation == {"video.swap_face": 7200}


def test_a_typo_in_the_yaml_file_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "mediagate.yaml"
    config.write_text("routing:\n  image.remove_backgroud: [pixelapi]\n")
    monkeypatch.setenv("MEDIAGATE_CONFIG", str(config))
    with pytest.raises(ValidationError, match=r"routing\.`image\.remove_backgroud`\.\[key\]"):
        Settings()


def test_a_typo_in_the_environment_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAGATE_JOB_DEADLINES", '{"audio.speach": 60}')
    with pytest.raises(ValidationError, match=r"job_deadlines\.`audio\.speach`\.\[key\]"):
        Settings()


def test_documented_deadlines_apply_and_a_configured_one_wins() -> None:
    """Everypixel's lipsync and video face swap take ~10 minutes a minute of video, one at a
    time per account: their jobs get hours, not the 30-minute default; configuration wins."""
    defaults = Settings().deadlines()
    assert defaults[Operation.video_lipsync] == DOCUMENTED_JOB_DEADLINES[Operation.video_lipsync]
    assert defaults[Operation.video_lipsync] > Settings().job_deadline_s
    assert Operation.image_generate not in defaults
    configured = Settings(job_deadlines={"video.lipsync": 60}).deadlines()
    assert configured[Operation.video_lipsync] == 60
    assert configured[Operation.video_swap_face] == 4 * 3600


def test_a_long_video_extends_its_jobs_deadline_by_the_documents_processing_time() -> None:
    """Everypixel: a minute of video takes about ten to process. A lipsync of a 10-minute
    video gets its operation's hours plus 100 minutes; a job whose length is unknown, or an
    operation the documents give no such time, keeps its operation's deadline."""
    deadlines = Deadlines(
        1800,
        {op.value: s for op, s in Settings().deadlines().items()},
        {op.value: r for op, r in DOCUMENTED_SECONDS_PER_MEDIA_SECOND.items()},
    )
    # model_construct skips validation (a job of two fields will do); pydantic's mypy plugin
    # still asks for every required field
    lipsync = Job.model_construct(operation=Operation.video_lipsync, created_at=utcnow())  # type: ignore[call-arg]
    assert deadlines.of(lipsync, 600.0) == 4 * 3600 + 6000
    assert deadlines.of(lipsync, None) == 4 * 3600
    keywords = Job.model_construct(operation=Operation.video_keywords, created_at=utcnow())  # type: ignore[call-arg]
    assert deadlines.of(keywords, 600.0) == 1800
    old = lipsync.model_copy(update={"created_at": utcnow() - timedelta(seconds=4 * 3600 + 60)})
    assert deadlines.passed(old, None)
    assert not deadlines.passed(old, 600.0)  # its video's processing time is not over yet
