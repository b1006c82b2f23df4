"""Everypixel emulator, the tasks: text-to-speech, lipsync and face swaps, one at a time.

Tasks of one kind run one at a time per account (the document: "processed one at a time per
account – if you submit multiple jobs at once, they will be queued and executed
sequentially"); the four sandbox key pairs belong to one account, so they share each queue.
A task waits ``PENDING`` (``queue`` = its position: 1 is next) until the one before it ends,
stays ``PENDING`` for the first fifth of its own ``timing.job_s`` (being picked up), runs
``STARTED`` (``queue`` 0), then ends ``SUCCESS`` or ``FAILURE``. The ``fast`` lipsync model
takes half the time. Nothing revokes a task (the document offers no cancel), so ``REVOKED``
never appears here. Tasks and their files are kept 24 hours.

Outputs are real files rendered when downloaded: speech a WAV of about 15 characters a second
(0.5 s to 2 min); lipsync an MP4 at the video's size (within 512 px) lasting as long as the
audio (the video's length when the audio's is unknown; at most 60 s); video swap an MP4 at
the target video's size and length; image swap a picture at the target's size (within
2048 px) and format (PNG when not PNG, JPEG or WEBP). A picture of one uniform colour has no
face: the swap ends ``FAILURE`` with "No face detected on the … image."
"""

from __future__ import annotations

import asyncio
import re
import uuid
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from app.sandbox import av, images
from app.sandbox.control import Fault
from app.sandbox.everypixel_wire import Form, Refusal, audio_duration, media, picture, video
from app.sandbox.everypixel_words import VOICES

Model = Literal["tts", "lipsync", "imageswap", "videoswap"]
MODELS: Final[tuple[Model, ...]] = ("tts", "lipsync", "imageswap", "videoswap")
Outcome = Literal["SUCCESS", "FAILURE"]

PICKUP_SHARE: Final = 0.2
TTL_S: Final = 24 * 3600
CHARS_PER_S: Final = 15
SPEECH_S: Final = (0.5, 120.0)
VIDEO_S: Final = (0.5, 60.0)
MAX_VIDEO_SIDE: Final = 512
MAX_IMAGE_SIDE: Final = 2048
VOICE_NAMES: Final = frozenset(v["api_name"] for v in VOICES)
NO_FACE: Final = "No face detected on the {} image."
MODERATION: Final = "The request was rejected by content moderation."


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class Output:
    """The file a successful task produces, rendered when downloaded."""

    kind: Literal["audio", "video", "image"]
    duration_s: float = 0.0
    width: int = 0
    height: int = 0
    format: str = "png"
    seed: int = 0

    @property
    def content_type(self) -> str:
        if self.kind == "audio":
            return "audio/wav"
        return "video/mp4" if self.kind == "video" else images.content_type(self.format)

    @property
    def extension(self) -> str:
        if self.kind != "image":
            return "wav" if self.kind == "audio" else "mp4"
        return "jpg" if self.format == "jpeg" else self.format

    def render(self) -> bytes:
        if self.kind == "audio":
            return av.wav_bytes(round(self.duration_s, 2))
        if self.kind == "video":
            return av.mp4_bytes(round(self.duration_s, 2), self.width, self.height)
        return images.render(self.width, self.height, self.format, self.seed)


@dataclass(frozen=True)
class Work:
    """What a create request asks for, read and checked."""

    output: Output
    failure: str | None = None
    """The message the task will fail with (no face found), or None."""
    speed: float = 1.0
    """Share of ``timing.job_s`` the task takes."""


@dataclass
class Task:
    id: str
    number: int
    """Creation order (several tasks may be created at one clock reading)."""
    model: Model
    account: str
    work: Work
    created_s: float
    starts_s: float
    ends_s: float
    file_name: str
    callback: str | None
    outcome: Outcome = "SUCCESS"
    message: str | None = None
    file_url: str = ""
    notified: bool = field(default=False)


class Tasks:
    """Every task by id, oldest first, with each (account, model) queue's last end time."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.order: deque[str] = deque()
        self.queue_ends: dict[tuple[str, Model], float] = {}
        self.created = 0

    def create(
        self,
        model: Model,
        account: str,
        work: Work,
        *,
        now: float,
        job_s: float,
        title: str | None,
        callback: str | None,
    ) -> Task:
        task_id = str(uuid.uuid4())
        starts = max(now, self.queue_ends.get((account, model), now))
        ends = starts + job_s * work.speed
        stem = re.sub(r"[^\w.-]+", "_", title or "")[:100].strip("._") or task_id
        self.created += 1
        task = Task(
            id=task_id,
            number=self.created,
            model=model,
            account=account,
            work=work,
            created_s=now,
            starts_s=starts,
            ends_s=ends,
            file_name=f"{stem}.{work.output.extension}",
            callback=callback,
        )
        if work.failure is not None:
            task.outcome, task.message = "FAILURE", work.failure
        self.queue_ends[(account, model)] = ends
        self.tasks[task_id] = task
        self.order.append(task_id)
        while self.tasks[self.order[0]].created_s < now - TTL_S:
            del self.tasks[self.order.popleft()]
        return task

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    def status(self, task: Task, now: float) -> str:
        if now >= task.ends_s:
            return task.outcome
        pickup = task.starts_s + PICKUP_SHARE * (task.ends_s - task.starts_s)
        return "PENDING" if now < pickup else "STARTED"

    def queue(self, task: Task, now: float) -> int:
        """While ``PENDING``: 1 + the tasks still waiting ahead (1 = next); else 0."""
        if self.status(task, now) != "PENDING":
            return 0
        ahead = sum(
            1
            for other in self.tasks.values()
            if (other.account, other.model) == (task.account, task.model)
            and other.number < task.number
            and self.status(other, now) == "PENDING"
        )
        return 1 + ahead

    def fail_now(self, task: Task, message: str, now: float) -> None:
        """End a task that has not ended yet with ``FAILURE`` (a fault on a status poll)."""
        if now < task.ends_s:
            task.outcome, task.message = "FAILURE", message
            task.starts_s, task.ends_s = min(task.starts_s, now), now


# what each create request asks for -----------------------------------------------------------


async def _speech(form: Form) -> Work:
    voice = form.text("voice")
    if voice is None:
        raise Refusal(400, "Voice is missing.")
    if voice not in VOICE_NAMES:
        raise Refusal(400, f"Voice '{voice}' not found. See /v1/tts/voices for the voices.")
    text = form.text("text")
    if text is None or not text.strip():
        raise Refusal(400, "Text is missing.")
    duration = _clamp(len(text) / CHARS_PER_S, SPEECH_S)
    return Work(Output("audio", duration_s=duration))


async def _lipsync(form: Form) -> Work:
    model = form.choice("model", ("normal", "fast"), "normal")
    audio = await media(form, "audio", "audio_url", "Audio")
    clip = await media(form, "video", "video_url", "Video")
    info = await asyncio.to_thread(video, clip, "Video")
    seconds = audio_duration(audio, "Audio") or info.duration_s
    width, height = _fit(info.width, info.height, MAX_VIDEO_SIDE)
    output = Output("video", _clamp(seconds, VIDEO_S), width, height)
    return Work(output, speed=0.5 if model == "fast" else 1.0)


async def _face(form: Form, role: str) -> images.ImageInfo:
    data = await media(form, role, f"{role}_url", f"{role.capitalize()} image")
    return await asyncio.to_thread(picture, data, f"{role.capitalize()} image")


async def _imageswap(form: Form) -> Work:
    enhance = form.flag("use_gfpgan")
    source, target = await _face(form, "source"), await _face(form, "target")
    width, height = _fit(target.width, target.height, MAX_IMAGE_SIDE)
    fmt = target.format if target.format in ("png", "jpeg", "webp") else "png"
    seed = zlib.crc32(f"{source}{target}{enhance}".encode())
    failure = next(
        (NO_FACE.format(role) for role, info in (("source", source), ("target", target))
         if info.uniform),
        None,
    )  # fmt: skip
    return Work(Output("image", width=width, height=height, format=fmt, seed=seed), failure)


async def _videoswap(form: Form) -> Work:
    form.flag("use_gfpgan")
    source = await _face(form, "source")
    clip = await media(form, "target", "target_url", "Target video")
    info = await asyncio.to_thread(video, clip, "Target video")
    width, height = _fit(info.width, info.height, MAX_VIDEO_SIDE)
    output = Output("video", _clamp(info.duration_s, VIDEO_S), width, height)
    return Work(output, NO_FACE.format("source") if source.uniform else None)


READERS: Final[dict[Model, Callable[[Form], Awaitable[Work]]]] = {
    "tts": _speech,
    "lipsync": _lipsync,
    "imageswap": _imageswap,
    "videoswap": _videoswap,
}
"""Each ``/v1/<model>/create``: its request read into the work, or a :class:`Refusal`."""

FAULT_FAILURES: Final[dict[Fault, dict[Model, str]]] = {
    Fault.no_face: {
        "imageswap": NO_FACE.format("source"),
        "videoswap": NO_FACE.format("source"),
        "lipsync": "No face detected in the video.",
    },
    Fault.blocked: {model: MODERATION for model in MODELS},
}
"""Faults that make a task fail, by fault and model, with the message it fails with."""


def fault_failure(fault: Fault | None, model: Model) -> str | None:
    """The message a task of ``model`` fails with under ``fault``, if that fault fails it."""
    return FAULT_FAILURES.get(fault, {}).get(model) if fault is not None else None
