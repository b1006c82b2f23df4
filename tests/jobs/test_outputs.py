"""An output's artifact carries the picture's size as Pillow reads it, whatever the format,
and none when the bytes are not a picture Pillow can read."""

from __future__ import annotations

import io
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from redis.asyncio import Redis

from app.domain.models import JobStatus
from app.providers.base import OutputFile, Succeeded
from tests.jobs.harness import Core, job_core
from tests.utils.media import png_bytes


@pytest.fixture
async def core(redis_client: Redis, tmp_path: Path) -> AsyncIterator[Core]:
    async with job_core(redis_client, tmp_path) as built:
        yield built


def _encoded(width: int, height: int, kind: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format=kind)
    return out.getvalue()


def _png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` × ``height``, the rest of it a real 4 × 4 picture's."""
    real = png_bytes(4, 4)
    return real[:16] + struct.pack(">II", width, height) + real[24:]


def _pillow_size(content: bytes) -> tuple[int | None, int | None]:
    try:
        with Image.open(io.BytesIO(content)) as img:
            return img.width, img.height
    except Exception:  # what Pillow cannot read has no size
        return None, None


OUTPUTS = [
    ("png", png_bytes(640, 480), "image/png"),
    ("png, one pixel", png_bytes(1, 1), "image/png"),
    ("png, wide", png_bytes(3000, 2), "image/png"),
    ("jpeg", _encoded(320, 200, "JPEG"), "image/jpeg"),
    ("webp", _encoded(64, 96, "WEBP"), "image/webp"),
    ("png header, zero width", _png_with_header(0, 7), "image/png"),
    ("png signature only", png_bytes(8, 8)[:20], "image/png"),
    ("not a picture", b"\x89PNG\r\n\x1a\n but not", "image/png"),
]


@pytest.mark.parametrize(
    ("content", "content_type"), [o[1:] for o in OUTPUTS], ids=[o[0] for o in OUTPUTS]
)
async def test_an_output_has_the_size_pillow_reads(
    core: Core, content: bytes, content_type: str
) -> None:
    job_id = await core.submit()
    core.alpha.submits.append(Succeeded(files=[OutputFile(content, content_type)]))
    record = await core.step(job_id)
    assert record.job.status is JobStatus.succeeded
    assert record.job.output is not None
    (artifact,) = record.job.output.artifacts
    assert (artifact.width, artifact.height) == _pillow_size(content)
    assert artifact.bytes == len(content)


async def test_a_png_output_has_its_width_and_height(core: Core) -> None:
    job_id = await core.submit()
    core.alpha.submits.append(Succeeded(files=[OutputFile(png_bytes(640, 480), "image/png")]))
    record = await core.step(job_id)
    assert record.job.output is not None
    (artifact,) = record.job.output.artifacts
    assert (artifact.width, artifact.height) == (640, 480)
