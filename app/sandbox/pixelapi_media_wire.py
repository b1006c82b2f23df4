"""PixelAPI emulator, the audio and video submissions: ``POST /v1/audio/generate`` and
``POST /v1/video/generate`` (JSON), read into :class:`~app.sandbox.pixelapi_jobs.Work`.

How the document is read (``app/providers/pixelapi.py`` keeps the same readings):

- **Audio**: ``prompt`` 3–500 characters, ``duration`` an integer 5–30 (default 15),
  ``model`` only ``musicgen-small``; the output is a WAV of ``duration`` seconds. Credits are
  the section's table: 5 up to 15 s, 10 for 16–30 s (its response example shows ``8.0`` for
  15 s; the heading "5–10 credits" and the table agree with each other, so they win). The
  answer adds ``duration`` and ``estimated_seconds`` (twice the duration, as in the example).
- **Video**: ``prompt`` 1–2000 characters, ``duration`` a number 1–10 (default 3),
  ``resolution`` ``480p`` (832×480, default) or ``720p`` (1280×720), ``negative_prompt`` up to
  2000 characters, ``seed`` an integer; the output is an MP4 of that size and length. The
  heading says "50–100 credits" and the credit table is empty: 50 at 480p, 100 at 720p (the
  tip gives 720p twice the generation time), which is also ``estimated_seconds`` (60 / 120).
- Errors are FastAPI's 422 with the list of ``{"type", "loc", "msg", "input"}``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.sandbox.pixelapi_jobs import Work
from app.sandbox.pixelapi_wire import json_object, validation_refusal

AUDIO_MODEL: Literal["musicgen-small"] = "musicgen-small"
VIDEO_MODEL = "wan2.1"
SHORT_AUDIO_S = 15
AUDIO_CREDITS = (5.0, 10.0)
"""Up to ``SHORT_AUDIO_S`` seconds, and longer."""
RESOLUTIONS = {"480p": (832, 480), "720p": (1280, 720)}
VIDEO_CREDITS = {"480p": 50.0, "720p": 100.0}
VIDEO_ESTIMATED_S = {"480p": 60, "720p": 120}


class _AudioBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=3, max_length=500)
    duration: int = Field(default=15, ge=5, le=30)
    model: Literal["musicgen-small"] = AUDIO_MODEL


class _VideoBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=2000)
    duration: float = Field(default=3, ge=1, le=10)
    resolution: Literal["480p", "720p"] = "480p"
    negative_prompt: str | None = Field(default=None, max_length=2000)
    seed: int | None = None


async def parse_audio(request: Request) -> Work:
    try:
        body = _AudioBody.model_validate(await json_object(request))
    except ValidationError as exc:
        raise validation_refusal(exc) from exc
    credits = AUDIO_CREDITS[body.duration > SHORT_AUDIO_S]
    return Work(kind="audio", model=body.model, duration_s=body.duration, credits=credits)


async def parse_video(request: Request) -> Work:
    try:
        body = _VideoBody.model_validate(await json_object(request))
    except ValidationError as exc:
        raise validation_refusal(exc) from exc
    width, height = RESOLUTIONS[body.resolution]
    return Work(
        width,
        height,
        kind="video",
        model=VIDEO_MODEL,
        seed=body.seed,
        duration_s=body.duration,
        credits=VIDEO_CREDITS[body.resolution],
    )


def estimated_seconds(work: Work) -> int:
    """The submission answer's ``estimated_seconds``."""
    if work.kind == "audio":
        return round(2 * work.duration_s)
    resolution = next(r for r, size in RESOLUTIONS.items() if size == (work.width, work.height))
    return VIDEO_ESTIMATED_S[resolution]
