"""A Python client generated from the committed document, used against a live gateway.

``openapi-python-client`` turns ``openapi/openapi.json`` into a package in a temporary
directory; the tests import it (its dependencies, httpx and attrs, are ours too) and do what
a user would: submit ``image.remove_background``, wait for it, download the artifact through
its signed URL and decode the image; read a problem+json error as a typed ``Problem``.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.contract.conftest import COMMITTED, SANDBOX_KEY
from tests.utils.deadlines import JOB_S
from tests.utils.media import decode_image, png_b64, png_bytes
from tests.utils.processes import Process

PACKAGE = "mediagate_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")
CONFIG = f"""\
package_name_override: {PACKAGE}
post_hooks: []
content_type_overrides:
  image/png: application/octet-stream
  image/jpeg: application/octet-stream
"""
"""Artifacts are bytes: have the client hand them back as ``File`` objects."""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    root = tmp_path_factory.mktemp("client")
    config = root / "config.yaml"
    config.write_text(CONFIG)
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(COMMITTED),
            "--output-path",
            str(root / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout  # no operation or model left out
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def part(name: str) -> Any:
    """A module of the generated package: ``part("api.jobs.get_job")``."""
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture
def client(generated: ModuleType, live_gateway: Process) -> Iterator[Any]:
    with generated.AuthenticatedClient(
        base_url=live_gateway.url, token=SANDBOX_KEY, timeout=60.0
    ) as c:
        yield c


def wait_for(client: Any, job_id: str, timeout_s: float = JOB_S) -> Any:
    get_job = part("api.jobs.get_job")
    terminal = {"succeeded", "failed", "canceled"}
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job.sync(job_id, client=client)
        if job.status.value in terminal:
            return job
        assert time.monotonic() < deadline, f"job still {job.status.value}"
        time.sleep(0.05)


def download(client: Any, url: str) -> bytes:
    """An artifact through its signed URL, split into what ``get_artifact`` takes."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    artifact_id = parts.path.rsplit("/", 1)[-1]
    response = part("api.artifacts.get_artifact").sync_detailed(
        artifact_id, client=client, expires=int(query["expires"][0]), sig=query["sig"][0]
    )
    assert response.status_code == 200, response.content
    assert isinstance(response.parsed, part("types").File)
    content: bytes = response.parsed.payload.read()
    return content


def test_submit_poll_and_download(client: Any) -> None:
    models = part("models")
    body = models.ImageRemoveBackgroundRequest(image=models.ImageInput(data=png_b64(48, 40)))
    response = part("api.operations.image_remove_background").sync_detailed(
        client=client, body=body
    )
    assert response.status_code == 202, response.content
    submitted = response.parsed
    assert isinstance(submitted, models.Job)
    assert submitted.operation == models.Operation.IMAGE_REMOVE_BACKGROUND

    job = wait_for(client, submitted.id)
    assert job.status == models.JobStatus.SUCCEEDED, job.error
    (artifact,) = job.output.artifacts
    assert artifact.content_type == "image/png"
    image = decode_image(download(client, artifact.url))
    assert image.format == "PNG" and image.size == (48, 40)


def test_prefer_wait_and_an_uploaded_file(client: Any) -> None:
    models, types = part("models"), part("types")
    upload = models.BodyUploadFile(
        file=types.File(payload=io.BytesIO(png_bytes(24, 24)), file_name="in.png")
    )
    uploaded = part("api.files.upload_file").sync(client=client, body=upload)
    assert isinstance(uploaded, models.FileObject), uploaded
    body = models.ImageRemoveBackgroundRequest(image=models.ImageInput(file_id=uploaded.id))
    response = part("api.operations.image_remove_background").sync_detailed(
        client=client, body=body, prefer="wait=30"
    )
    assert response.status_code == 200, response.content
    job = response.parsed
    assert job.status == models.JobStatus.SUCCEEDED
    image = decode_image(download(client, job.output.artifacts[0].url))
    assert image.size == (24, 24)


def test_errors_arrive_as_typed_problems(client: Any) -> None:
    models = part("models")
    body = models.ImageRemoveBackgroundRequest(image=models.ImageInput(data="not base64!"))
    response = part("api.operations.image_remove_background").sync_detailed(
        client=client, body=body
    )
    assert response.status_code == 422
    problem = response.parsed
    assert isinstance(problem, models.Problem)
    assert problem.code == models.ErrorCode.INVALID_BASE64
    assert problem.errors[0].pointer == "/image/data"

    missing = part("api.jobs.get_job").sync_detailed("job_nonexistent", client=client)
    assert missing.status_code == 404
    assert missing.parsed.code == models.ErrorCode.NOT_FOUND
