"""The official ``pixelapi`` Python client (PyPI 0.2.0, used unchanged) against the emulator.

The client builds its own ``httpx.Client`` from ``base_url`` (no client or transport can be
passed in), so the sandbox runs in a real uvicorn server and the client is pointed at it through
``base_url``. It makes every call it has that the document describes: ``image.generate`` (both
models, every documented option), ``image.remove_background``, ``image.upscale``,
``image.restore_face``, ``image.replace_background``, ``image.remove_object``,
``audio.generate``, ``generation.get`` / ``generation.wait``, in the sync and async clients,
with input images served by a small local file server. The emulator accepts every request the
client sends (its ``User-Agent``, ``pixelapi-python/0.2.0``, is a custom product, so the CDN
check lets it through).

Deviations of the client from the document, pinned by the tests below:

- **``queued`` is not a status it knows.** ``Generation.from_dict`` parses ``status`` into an
  enum of ``pending``, ``processing``, ``completed``, ``failed``; every submission answer the
  document shows says ``"status": "queued"`` (pixelapi.txt line 97 and each endpoint's
  "Response"; line 67: "Status progresses: queued → processing → completed"), and the status
  table lists ``queued`` and ``blocked`` (lines 388–395). So every
  submission call raises ``ValueError`` *after* the job was accepted and charged, and
  ``generation.get`` / ``wait`` raise on a queued or blocked job. The tests find the job
  through ``GET /v1/account/usage`` and let ``wait`` see it once it has ended.
- **Remove object as JSON.** ``image.remove_object(image_url=, mask_url=)`` sends JSON; the
  document gives only multipart with a ``mask`` file (lines 222–237); the client offers no
  prompt-only call. The emulator accepts the JSON form (``mask_url`` as the mask's URL
  form), read from this client.
- **Rate limits.** ``RateLimitError.retry_after`` reads only ``Retry-After``; the document
  says to check ``X-RateLimit-Reset`` (lines 59, 927), which is all a 429 carries: it is ``None``.
- **Missing resources.** The README's ``api.account.balance()`` and ``api.models.list()`` do
  not exist on the client, and it has nothing for video or virtual try-on. The modules
  ``pixelapi.account``, ``pixelapi.video`` (and ``image``/``audio``) call
  ``client._request``, which ``PixelAPI`` does not have: they cannot be used unchanged, so
  only their failure is pinned. The video module would also send ``model``/``num_frames``
  (``cogvideo-2b``), not the document's ``duration``/``resolution``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import io
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from PIL import Image

from app.sandbox import images
from app.sandbox import pixelapi as emulator
from app.sandbox.credentials import PIXELAPI_API_KEY
from tests.utils.deadlines import REQUEST_S
from tests.utils.sandbox import CONTROL
from tests.utils.servers import serve_files, serve_sandbox


def _load_pixelapi() -> ModuleType:
    """The ``pixelapi`` package, its code unchanged.

    ``import pixelapi`` fails in 0.2.0: ``__init__`` imports ``.client`` before it sets
    ``__version__``, and ``client`` does ``from . import __version__`` (a circular import,
    pinned by ``test_the_package_does_not_import_as_published``). So the package module is
    created from its own spec with ``__version__`` (the value ``__init__`` sets too late, the
    installed distribution's version) already in place, then its ``__init__`` runs as shipped.
    """
    loaded = sys.modules.get("pixelapi")
    if loaded is not None and hasattr(loaded, "PixelAPI"):
        return loaded
    spec = importlib.util.find_spec("pixelapi")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__version__ = importlib.metadata.version("pixelapi")  # type: ignore[attr-defined]
    sys.modules["pixelapi"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["pixelapi"]
        raise
    return module


pixelapi = _load_pixelapi()
PixelAPI = pixelapi.PixelAPI
AsyncPixelAPI = pixelapi.AsyncPixelAPI
PixelAPIError = pixelapi.PixelAPIError
AuthenticationError = pixelapi.AuthenticationError
InsufficientCreditsError = pixelapi.InsufficientCreditsError
NotFoundError = pixelapi.NotFoundError
RateLimitError = pixelapi.RateLimitError
ServerError = pixelapi.ServerError
ValidationError = pixelapi.ValidationError
AccountClient = importlib.import_module("pixelapi.account").AccountClient
VideoClient = importlib.import_module("pixelapi.video").VideoClient

JOB_S = 0.05
QUEUED = "'queued' is not a valid GenerationStatus"
UA = {"User-Agent": "MyApp/1.0"}
PRODUCT = "/product.jpg"

FILES: dict[str, tuple[bytes, str]] = {
    "/product.jpg": (images.render(300, 200, "jpeg", seed=1), "image/jpeg"),
    "/mask.png": (images.render(300, 200, "png", seed=2), "image/png"),
    "/low-res.png": (images.render(120, 90, "png", seed=3), "image/png"),
}


@pytest.fixture(scope="module")
def files() -> Iterator[str]:
    """Base URL of a local server holding the input images."""
    with serve_files(FILES) as url:
        yield url


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with serve_sandbox(job_s=JOB_S) as url:
        yield url


@pytest.fixture
def api_url(sandbox: str) -> str:
    assert (
        httpx.delete(f"{sandbox}/_sandbox/faults", headers=CONTROL, timeout=REQUEST_S).status_code
        == 204
    )
    return f"{sandbox}/_sandbox/pixelapi"


@pytest.fixture
def client(api_url: str) -> Iterator[Any]:
    """The sync client, unchanged, pointed at the emulator."""
    with PixelAPI(PIXELAPI_API_KEY, base_url=api_url, timeout=10) as pixel:
        yield pixel


@pytest.fixture
async def async_client(api_url: str) -> AsyncIterator[Any]:
    async with AsyncPixelAPI(PIXELAPI_API_KEY, base_url=api_url, timeout=10) as pixel:
        yield pixel


def _stats(sandbox: str) -> dict[str, Any]:
    stats: dict[str, Any] = (
        httpx.get(f"{sandbox}/_sandbox/stats", headers=CONTROL, timeout=REQUEST_S)
        .json()
        .get("pixelapi", {})
    )
    return stats


def _arm(sandbox: str, fault: str) -> None:
    body = {"provider": "pixelapi", "fault": fault, "count": 1}
    assert (
        httpx.post(
            f"{sandbox}/_sandbox/faults", json=body, headers=CONTROL, timeout=REQUEST_S
        ).status_code
        == 204
    )


def _newest(api_url: str) -> dict[str, Any]:
    """The account's newest job (``GET /v1/account/usage``), ended."""
    headers = {"Authorization": f"Bearer {PIXELAPI_API_KEY}", **UA}
    time.sleep(JOB_S * 2)
    usage = httpx.get(
        f"{api_url}/v1/account/usage?limit=1", headers=headers, timeout=REQUEST_S
    ).json()
    job: dict[str, Any] = usage["usage"][0]
    return job


def _submitted_then_waited(client: Any, api_url: str, call: Any) -> Any:
    """Run ``call``: the job is accepted, the client chokes on ``queued``; ``wait`` then
    reads the ended job."""
    with pytest.raises(ValueError, match=QUEUED):
        call()
    job = _newest(api_url)
    done = client.generation.wait(job["generation_id"], timeout=5, poll_interval=0.02)
    assert done.is_complete and done.id == job["generation_id"]
    return done


def _png(url: str) -> Image.Image:
    response = httpx.get(url, headers=UA, timeout=REQUEST_S)
    assert (response.status_code, response.headers["content-type"]) == (200, "image/png")
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_the_package_does_not_import_as_published() -> None:
    imported = subprocess.run(
        [sys.executable, "-c", "import pixelapi"], capture_output=True, text=True, timeout=60
    )
    assert imported.returncode != 0
    assert "cannot import name '__version__'" in imported.stderr
    assert pixelapi.__version__ == "0.2.0"


# every call, sync --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({"model": "flux-schnell"}, (1024, 1024)),
        ({"model": "flux-schnell", "width": 768, "height": 512, "steps": 4, "seed": 1}, (768, 512)),
        (
            {
                "model": "sdxl",
                "negative_prompt": "blur",
                "width": 512,
                "height": 640,
                "steps": 30,
                "guidance_scale": 7.5,
                "seed": 42,
            },
            (512, 640),
        ),
    ],
)
def test_image_generate(
    client: Any, api_url: str, sandbox: str, options: dict[str, Any], size: tuple[int, int]
) -> None:
    before = _stats(sandbox).get("submissions", 0)
    done = _submitted_then_waited(
        client, api_url, lambda: client.image.generate(prompt="earbuds", **options)
    )
    assert (done.model, done.credits_used) == (options["model"], 5.0)
    assert _png(done.output_url).size == size
    assert _stats(sandbox)["submissions"] == before + 1


@pytest.mark.parametrize(
    ("method", "kwargs", "size", "mode"),
    [
        ("remove_background", {"image_url": PRODUCT}, (300, 200), "RGBA"),
        ("upscale", {"image_url": "/low-res.png"}, (480, 360), "RGB"),
        ("restore_face", {"image_url": PRODUCT}, (300, 200), "RGB"),
        ("replace_background", {"image_url": PRODUCT, "prompt": "marble"}, (300, 200), "RGB"),
        ("remove_object", {"image_url": PRODUCT, "mask_url": "/mask.png"}, (300, 200), "RGB"),
    ],
)
def test_image_edits(
    client: Any,
    api_url: str,
    files: str,
    method: str,
    kwargs: dict[str, str],
    size: tuple[int, int],
    mode: str,
) -> None:
    urls = {k: f"{files}{v}" if k.endswith("_url") else v for k, v in kwargs.items()}
    call = getattr(client.image, method)
    done = _submitted_then_waited(client, api_url, lambda: call(**urls))
    assert done.metadata["operation"] == method.replace("_", "-")
    image = _png(done.output_url)
    assert (image.size, image.mode) == (size, mode)


@pytest.mark.parametrize(("duration", "credits"), [(15, 5.0), (20, 10.0)])
def test_audio_generate(client: Any, api_url: str, duration: int, credits: float) -> None:
    done = _submitted_then_waited(
        client, api_url, lambda: client.audio.generate(prompt="lofi beat", duration=duration)
    )
    assert (done.model, done.credits_used) == ("musicgen-small", credits)
    response = httpx.get(done.output_url, headers=UA, timeout=REQUEST_S)
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content), "rb") as wav:
        assert wav.getnframes() / wav.getframerate() == duration


# statuses the client does not know, and failures ------------------------------------------------


def test_get_on_a_queued_or_blocked_job_raises(
    client: Any, api_url: str, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the job stays queued: the emulator's clock stops here (not at a fixed value, which a
    # machine up for less than that would see as the future, making this job the newest)
    stopped = emulator._now()
    monkeypatch.setattr(emulator, "_now", lambda: stopped)
    with pytest.raises(ValueError, match=QUEUED):
        client.image.generate(prompt="earbuds")
    generation_id = _newest(api_url)["generation_id"]
    with pytest.raises(ValueError, match=QUEUED):
        client.generation.get(generation_id)
    _arm(sandbox, "blocked")
    with pytest.raises(ValueError, match="'blocked' is not a valid GenerationStatus"):
        client.generation.get(generation_id)


def test_a_failed_job_makes_wait_raise(client: Any, api_url: str, sandbox: str) -> None:
    _arm(sandbox, "no_face")
    with pytest.raises(ValueError, match=QUEUED):
        client.image.generate(prompt="earbuds")
    generation_id = _newest(api_url)["generation_id"]
    with pytest.raises(PixelAPIError, match="No face detected"):
        client.generation.wait(generation_id, timeout=5, poll_interval=0.02)


def test_documented_errors_become_the_clients_exceptions(
    client: Any, api_url: str, sandbox: str
) -> None:
    with (
        PixelAPI("pk_live_wrong", base_url=api_url) as wrong,
        pytest.raises(AuthenticationError, match="Invalid API key"),
    ):
        wrong.image.generate(prompt="earbuds")
    _arm(sandbox, "no_credits")
    with pytest.raises(InsufficientCreditsError, match="Insufficient credits"):
        client.image.generate(prompt="earbuds")
    _arm(sandbox, "rate_limit")
    with pytest.raises(RateLimitError) as limited:
        client.audio.generate(prompt="lofi beat")
    assert limited.value.retry_after is None, "the client reads Retry-After only"
    with pytest.raises(ValidationError):
        client.image.generate(prompt="earbuds", model="sd1.5")
    with pytest.raises(NotFoundError, match="Generation not found"):
        client.generation.get("no-such-generation")
    _arm(sandbox, "http_500")
    with pytest.raises(ServerError):
        client.image.upscale(image_url="https://example.invalid/x.png")


def test_the_readme_resources_the_client_lacks(client: Any, api_url: str) -> None:
    assert not hasattr(client, "account") and not hasattr(client, "models")
    assert not hasattr(client, "video")
    with pytest.raises(AttributeError, match="_request"):
        AccountClient(client).balance()
    with pytest.raises(AttributeError, match="_request"):
        VideoClient(client).generate("a drone shot", wait=False)


# the async client --------------------------------------------------------------------------------


async def test_the_async_client_makes_the_same_calls(
    async_client: Any, api_url: str, files: str
) -> None:
    with pytest.raises(ValueError, match=QUEUED):
        await async_client.image.replace_background(
            image_url=f"{files}/product.jpg", prompt="clouds"
        )
    generation_id = _newest(api_url)["generation_id"]
    done = await async_client.generation.wait(generation_id, timeout=5, poll_interval=0.02)
    assert done.is_complete and done.metadata["operation"] == "replace-background"

    with pytest.raises(ValueError, match=QUEUED):
        await async_client.audio.generate(prompt="epic orchestral trailer", duration=5)
    generation_id = _newest(api_url)["generation_id"]
    done = await async_client.generation.get(generation_id)
    assert (done.status.value, done.model) == ("completed", "musicgen-small")
