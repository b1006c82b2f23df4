"""The official ``imagepig`` Python client (PyPI, used unchanged) against the emulator.

The sandbox runs in a real uvicorn server; the client is pointed at it through its own
``api_url`` parameter and makes every call the document describes (default, xl, flux with each
proportion it offers, faceswap, cutout, upscale, outpaint, ``storage_days``), with input images
served by a small local file server. A request the emulator refuses would be an emulator
fidelity bug, or the client deviating from the document.

Deviations of the client (1.0.7) from the document, pinned by the tests below:

- ``outpaint(image, positive_prompt, negative_prompt, top, right, bottom, left)``: the
  document's own Python example, ``imagepig.outpaint(url, 0, 0, 500)`` (imagepig.txt line
  1651), sends ``positive_prompt=0, negative_prompt=0, top=500``; the document types both
  prompts as strings (line 1579), so the service refuses it. The keyword form works.
- ``default()`` and ``xl()`` send the prompt as ``negative_prompt`` too, ignoring their
  ``negative_prompt`` argument (valid on the wire, but not what the caller asked for).
- ``ImagePig.Proportion`` has no ``VERTICAL``, though the document lists ``vertical``
  (576×1024, line 573): the client cannot ask for it.
- Image bytes are sent as ``b64encode(image)``, a ``bytes`` object ``requests`` cannot
  serialise: a ``TypeError`` before anything is sent (the document's ``image_data`` is a
  base64 string). Only URL inputs work.
- ``replace()`` calls ``/replace``, which the document does not describe: not exercised.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from imagepig import ImagePig  # type: ignore[import-untyped]
from imagepig.api import ImagePigError  # type: ignore[import-untyped]
from PIL import Image

from app.sandbox import images
from app.sandbox.credentials import IMAGEPIG_API_KEY
from tests.utils.deadlines import REQUEST_S
from tests.utils.sandbox import CONTROL
from tests.utils.servers import serve_files, serve_sandbox


def _uniform(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 160)).save(out, format="PNG")
    return out.getvalue()


FILES: dict[str, tuple[bytes, str]] = {
    "/jane.jpeg": (images.render(300, 400, "jpeg", seed=1), "image/jpeg"),
    "/mona-lisa.jpeg": (images.render(2000, 1000, "jpeg", seed=2), "image/jpeg"),
    "/street.jpeg": (images.render(320, 240, "jpeg", seed=3), "image/jpeg"),
    "/jane-lowres.jpeg": (images.render(128, 96, "jpeg", seed=4), "image/jpeg"),
    "/blank.png": (_uniform(64, 64), "image/png"),
}
"""Stand-ins for the document's sample images (``blank.png`` shows no face)."""


@pytest.fixture(scope="module")
def files() -> Iterator[str]:
    """Base URL of a local server holding the input images."""
    with serve_files(FILES) as url:
        yield url


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with serve_sandbox(job_s=0.05) as url:
        yield url


@pytest.fixture
def pig(sandbox: str) -> ImagePig:
    """The client, unchanged, pointed at the emulator; faults and counters cleared."""
    assert (
        httpx.delete(f"{sandbox}/_sandbox/faults", headers=CONTROL, timeout=REQUEST_S).status_code
        == 204
    )
    return ImagePig(IMAGEPIG_API_KEY, api_url=f"{sandbox}/_sandbox/imagepig")


def _stats(sandbox: str) -> dict[str, Any]:
    stats: dict[str, Any] = (
        httpx.get(f"{sandbox}/_sandbox/stats", headers=CONTROL, timeout=REQUEST_S)
        .json()
        .get("imagepig", {})
    )
    return stats


def _arm(sandbox: str, fault: str) -> None:
    body = {"provider": "imagepig", "fault": fault, "count": 1}
    assert (
        httpx.post(
            f"{sandbox}/_sandbox/faults", json=body, headers=CONTROL, timeout=REQUEST_S
        ).status_code
        == 204
    )


def _decoded(result: Any, fmt: str, size: tuple[int, int]) -> Image.Image:
    """The client's image, checked against the answer's ``mime_type``, format and size."""
    image: Image.Image = result.image
    assert (image.format, image.size) == (fmt, size)
    assert result.mime_type == Image.MIME[fmt]
    assert isinstance(result.duration, timedelta) and result.duration >= timedelta(0)
    return image


# -- text to image -----------------------------------------------------------------------


def test_default_as_in_the_document(pig: ImagePig) -> None:
    result = pig.default("adorable pig")

    _decoded(result, "JPEG", (512, 512))
    assert isinstance(result.seed, int) and result.seed >= 0


def test_default_passes_format_seed_and_language_through(pig: ImagePig) -> None:
    first = pig.default("rozkošné prasátko", format="PNG", seed=42, language="cs")
    again = pig.default("rozkošné prasátko", format="PNG", seed=42, language="cs")

    _decoded(first, "PNG", (512, 512))
    assert first.seed == 42
    assert first.data == again.data


def test_xl_as_in_the_document(pig: ImagePig) -> None:
    _decoded(pig.xl("sunbathing pig"), "JPEG", (1024, 1024))


@pytest.mark.parametrize(
    ("proportion", "size"),
    [
        (None, (1216, 832)),  # the document's default: landscape
        (ImagePig.Proportion.LANDSCAPE, (1216, 832)),
        (ImagePig.Proportion.PORTRAIT, (832, 1216)),
        (ImagePig.Proportion.SQUARE, (1024, 1024)),
        (ImagePig.Proportion.WIDE, (1344, 768)),
    ],
)
def test_flux_with_each_proportion_the_client_offers(
    pig: ImagePig, proportion: Any, size: tuple[int, int]
) -> None:
    result = (
        pig.flux("space captain pig")
        if proportion is None
        else pig.flux("space captain pig", proportion, seed=7, format="PNG")
    )

    _decoded(result, "JPEG" if proportion is None else "PNG", size)


def test_the_client_cannot_ask_flux_for_vertical() -> None:
    assert "vertical" not in {p.value for p in ImagePig.Proportion}  # the document has it


def test_flux_refuses_a_negative_prompt_as_the_document_says(pig: ImagePig) -> None:
    with pytest.raises(ImagePigError, match="HTTP 400"):
        pig.flux("space captain pig", negative_prompt="clouds")


# -- image to image ----------------------------------------------------------------------


def test_faceswap_as_in_the_document(pig: ImagePig, files: str) -> None:
    result = pig.faceswap(f"{files}/jane.jpeg", f"{files}/mona-lisa.jpeg")

    _decoded(result, "JPEG", (1024, 512))  # the target, downscaled to 1024 px
    assert result.seed is None  # /faceswap answers no seed


def test_faceswap_without_a_face_is_422(pig: ImagePig, files: str) -> None:
    with pytest.raises(ImagePigError, match="HTTP 422"):
        pig.faceswap(f"{files}/jane.jpeg", f"{files}/blank.png")


def test_cutout_as_in_the_document(pig: ImagePig, files: str) -> None:
    image = _decoded(pig.cutout(f"{files}/street.jpeg"), "PNG", (320, 240))

    assert image.mode == "RGBA"


@pytest.mark.parametrize(
    ("factor", "size"), [(None, (256, 192)), (4, (512, 384)), (8, (1024, 768))]
)
def test_upscale_as_in_the_document(
    pig: ImagePig, files: str, factor: int | None, size: tuple[int, int]
) -> None:
    url = f"{files}/jane-lowres.jpeg"
    result = pig.upscale(url) if factor is None else pig.upscale(url, factor, format="PNG")

    _decoded(result, "JPEG" if factor is None else "PNG", size)


def test_outpaint_with_the_clients_own_signature(pig: ImagePig, files: str) -> None:
    result = pig.outpaint(f"{files}/jane.jpeg", "dress", bottom=500, seed=1)

    _decoded(result, "JPEG", (300, 900))
    assert result.seed == 1


def test_outpaint_as_the_documents_python_example_writes_it_is_refused(
    pig: ImagePig, files: str, sandbox: str
) -> None:
    """imagepig.txt line 1651 passes ``0, 0, 500`` where the client takes the prompts first."""
    with pytest.raises(ImagePigError, match="HTTP 400: positive_prompt"):
        pig.outpaint(f"{files}/jane.jpeg", 0, 0, 500)

    assert _stats(sandbox)["submissions"] == 0


def test_image_bytes_cannot_be_sent_by_the_client(pig: ImagePig, sandbox: str) -> None:
    with pytest.raises(TypeError, match="bytes"):
        pig.cutout(FILES["/street.jpeg"][0])

    assert _stats(sandbox).get("requests", 0) == 0


# -- stored images -----------------------------------------------------------------------


def test_storage_days_answers_a_url_the_client_downloads(
    pig: ImagePig, files: str, sandbox: str
) -> None:
    generated = pig.default("adorable pig", format="PNG", storage_days=1)

    assert "image_data" not in generated.content
    assert generated.url.startswith(f"{sandbox}/_sandbox/imagepig/storage/")
    _decoded(generated, "PNG", (512, 512))

    upscaled = pig.upscale(generated.url, 2, storage_days=1)  # a stored image as input
    _decoded(upscaled, "JPEG", (1024, 1024))


# -- errors ------------------------------------------------------------------------------


def test_a_wrong_key_is_401(sandbox: str) -> None:
    wrong = ImagePig("wrong-key", api_url=f"{sandbox}/_sandbox/imagepig")

    with pytest.raises(ImagePigError, match="HTTP 401: Invalid API key"):
        wrong.default("adorable pig")


@pytest.mark.parametrize(
    ("fault", "status"),
    [("http_500", 500), ("rate_limit", 429), ("no_face", 422), ("blocked", 403),
     ("no_credits", 402)],
)  # fmt: skip
def test_faults_reach_the_client_as_its_error(
    pig: ImagePig, files: str, sandbox: str, fault: str, status: int
) -> None:
    _arm(sandbox, fault)

    with pytest.raises(ImagePigError, match=f"HTTP {status}: "):
        pig.cutout(f"{files}/street.jpeg")


def test_garbage_fault_leaves_the_client_without_an_image(pig: ImagePig, sandbox: str) -> None:
    _arm(sandbox, "garbage")

    result = pig.xl("sunbathing pig")  # 200 with an HTML page: the client reads no content

    assert result.content == {} and result.data is None
