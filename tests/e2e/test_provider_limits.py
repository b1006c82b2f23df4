"""Inputs conformed to each provider's documented limits, end to end: a phone photo (4000×3000
JPEG, rotated by its EXIF tag) through every Perfect Corp hair and makeup task, against the
emulator, which refuses a long side above 1024 as the document says the provider does
(``tests/sandbox/test_perfectcorp_sandbox.py``)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.utils.deadlines import JOB_S
from tests.utils.jobs import wait_all_terminal
from tests.utils.net import with_db
from tests.utils.processes import Process, gateway

pytestmark = pytest.mark.e2e

ORIENTATION = 0x0112
HAIR_VARIANTS = ("style", "wig", "extension", "bangs", "volume")


def phone_photo(width: int = 4000, height: int = 3000, orientation: int = 6) -> bytes:
    """A camera JPEG: sensor-sized, grainy, stored sideways with an EXIF orientation."""
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    grain = Image.effect_noise((width // 8, height // 8), 40)
    noise = grain.resize((width, height), Image.Resampling.NEAREST).convert("RGB")
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    out = io.BytesIO()
    Image.blend(img, noise, 0.3).save(out, format="JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with gateway(with_db(redis_url, 11), tmp_path_factory.mktemp("limits")) as proc:
        yield proc


async def _upload(client: httpx.AsyncClient, content: bytes) -> dict[str, str]:
    uploaded = await client.post(
        "/v1/files", files={"file": ("IMG_0001.jpg", content, "image/jpeg")}
    )
    assert uploaded.status_code == 201, uploaded.text
    return {"file_id": uploaded.json()["id"]}


async def _style(client: httpx.AsyncClient, variant: str) -> str:
    params: dict[str, str | int] = {
        "operation": "image.hairstyle",
        "variant": variant,
        "page_size": 1,
    }
    styles = (await client.get("/v1/styles", params=params)).raise_for_status().json()["data"]
    return str(styles[0]["id"])


async def test_a_phone_photo_goes_through_every_perfect_hair_and_makeup_task(
    client: httpx.AsyncClient,
) -> None:
    photo = await _upload(client, phone_photo())
    reference = await _upload(client, phone_photo(3000, 4000, orientation=1))
    requests: list[tuple[str, dict[str, Any]]] = [
        (
            "/v1/images/hairstyle",
            {"image": photo, "variant": variant, "style_id": await _style(client, variant)},
        )
        for variant in HAIR_VARIANTS
    ]
    requests.append(("/v1/images/transfer-makeup", {"image": photo, "reference": reference}))
    ids = []
    for route, body in requests:
        response = await client.post(
            route, json={**body, "provider": "perfectcorp", "fallback": False}
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    jobs = await wait_all_terminal(client, ids, JOB_S)
    for job in jobs.values():
        assert job["status"] == "succeeded", (job["operation"], job.get("error"))
        [attempt] = job["attempts"]
        conformed = {c["input"]: c for c in attempt["conformed"]}
        sent = conformed[photo["file_id"]]
        assert sent["rotated"] is True
        assert (sent["before"]["width"], sent["before"]["height"]) == (4000, 3000)
        # EXIF applied (portrait), aspect kept, long side within the document's 1024
        assert (sent["after"]["width"], sent["after"]["height"]) == (768, 1024)
        assert sent["after"]["content_type"] == "image/jpeg"
