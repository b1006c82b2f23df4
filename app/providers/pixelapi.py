"""PixelAPI adapter (``providers/pixelapi.txt``): asynchronous jobs, polled until done.

================================  =====================================================
image.generate                    ``POST /v1/image/generate`` (JSON; ``model``
                                  ``flux-schnell`` or ``sdxl``)
image.remove_background           ``POST /v1/image/remove-background``
image.upscale                     ``POST /v1/image/upscale`` (always 4×)
every job                         ``GET /v1/image/{generation_id}`` until ``completed``,
                                  ``failed`` or ``blocked``; then ``output_url`` is fetched
================================  =====================================================

Every request carries ``Authorization: Bearer <key>`` and ``User-Agent: mediagate/0.1`` (the
CDN answers 403 to a missing or stock-library agent). Media: a ``url`` reference goes out as
JSON ``image_url``; any other reference is read and uploaded as the multipart ``image`` file.
The output download carries the User-Agent but never the key: ``output_url`` is a public,
expiring (24 h) file URL that may live on another host.

Readings of what the document leaves open (the sandbox emulator keeps the same ones):

- **Prices.** The document quotes two sets of credit costs: the pricing table and the FAQ say
  remove background 2, generation 3; the endpoint headings and each response's
  ``credits_used`` say 4 and 5; upscale is 20 in both. The account is charged what responses
  report, so the defaults are 4 / 5 / 20, one gateway credit per PixelAPI credit ($0.001 on
  the Starter plan).
- **Parameters.** Generation honours ``prompt``, ``model`` (default ``flux-schnell``, as in
  every example), ``width``/``height`` (512–1536 upstream; outside that range the binding
  refuses them), ``seed``, and ``negative_prompt`` with ``sdxl`` only ("SDXL only": with FLUX
  it would be dropped silently, so the binding refuses it). ``aspect`` and ``output_format``
  are not documented and stay unsupported; outputs are PNG. Background removal takes only the
  image. Upscale takes no factor upstream: it is always 4×, so ``scale`` is limited to 4 (a
  client that sends no ``scale`` gets 4× here).
- **Statuses** come from one table (``STATUSES``). ``failed`` ("check error field"; the video
  section calls it ``error_message``, so both are read) is an upstream failure worth a retry
  elsewhere; ``blocked`` is ``content_blocked``, the user's own, never retried. A status not
  in the table is an unreadable answer.
- **HTTP errors** come from one table (``HTTP_ERRORS``): 401/403 → ``provider_auth_failed``
  (the 403 is the CDN's, often not JSON), 402 → ``provider_unavailable`` (this account is
  empty; another provider can serve), 429 → ``provider_rate_limited`` with ``retry_after_s``
  from ``Retry-After`` if sent, else ``X-RateLimit-Reset`` (Unix seconds, or seconds to wait
  when small), 400/422 → ``invalid_parameter``, 413 → ``media_too_large``, 404 (an unknown or
  expired generation) → ``upstream_failed``; all but the user's own (400/413/422) are
  retryable. 5xx is raised as :class:`~app.errors.ProviderUnavailable`. Error text is the
  body's ``detail`` (a string, FastAPI's list of ``msg``, or try-on's ``{"error", "message"}``).
- **Bodies** that do not parse, or parse without ``generation_id`` / ``status`` /
  ``output_url`` where one is due, raise ``ProviderUnavailable``; they never crash the worker.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Final, Literal
from urllib.parse import quote

import httpx

from app.errors import ErrorCode, ProviderUnavailable
from app.jobs.media import MediaInput
from app.jobs.operations import GenerateImage, Operation, Params
from app.providers._http import upstream_errors
from app.providers.base import (
    Adapter,
    Binding,
    Call,
    Failed,
    OutputFile,
    PollResult,
    Progress,
    SubmitResult,
    Submitted,
    Succeeded,
)

PROVIDER = "pixelapi"
USER_AGENT = "mediagate/0.1"

MODELS: Final[Mapping[str, str]] = {"flux-schnell": "flux-schnell", "sdxl": "sdxl"}
"""Canonical model → PixelAPI model id."""
DEFAULT_MODEL = "flux-schnell"
NEGATIVE_PROMPT_MODELS = frozenset({"sdxl"})
SIDE_RANGE = range(512, 1537)
"""Documented ``width``/``height``: 512–1536."""
UPSCALE_FACTOR = 4

ENDPOINTS: Final[Mapping[Operation, str]] = {
    Operation.image_generate: "/v1/image/generate",
    Operation.image_remove_background: "/v1/image/remove-background",
    Operation.image_upscale: "/v1/image/upscale",
}


@dataclass(frozen=True)
class Meaning:
    """What an upstream status or HTTP error means in the gateway's terms."""

    code: ErrorCode
    retryable: bool


Running = Literal["running"]
Completed = Literal["completed"]

STATUSES: Final[Mapping[str, Running | Completed | Meaning]] = {
    "queued": "running",
    "processing": "running",
    "completed": "completed",
    "failed": Meaning(ErrorCode.upstream_failed, retryable=True),
    "blocked": Meaning(ErrorCode.content_blocked, retryable=False),
}
"""Every status of ``GET /v1/image/{id}`` → progress, success, or a failure's meaning."""

HTTP_ERRORS: Final[Mapping[int, Meaning]] = {
    400: Meaning(ErrorCode.invalid_parameter, retryable=False),
    401: Meaning(ErrorCode.provider_auth_failed, retryable=True),
    402: Meaning(ErrorCode.provider_unavailable, retryable=True),
    403: Meaning(ErrorCode.provider_auth_failed, retryable=True),
    404: Meaning(ErrorCode.upstream_failed, retryable=True),
    413: Meaning(ErrorCode.media_too_large, retryable=False),
    422: Meaning(ErrorCode.invalid_parameter, retryable=False),
    429: Meaning(ErrorCode.provider_rate_limited, retryable=True),
}
"""Documented 4xx answers → meaning; 5xx is raised, any other 4xx is ``UNLISTED_ERROR``."""
UNLISTED_ERROR = Meaning(ErrorCode.upstream_failed, retryable=False)

_IMAGE_MAGIC = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"RIFF": "image/webp"}


def _generate_refusal(params: Params) -> str | None:
    """Sizes outside 512–1536, and ``negative_prompt`` with a model that ignores it."""
    if not isinstance(params, GenerateImage):
        return None
    for name in ("width", "height"):
        value = getattr(params, name)
        if value is not None and value not in SIDE_RANGE:
            return name
    model = params.model or DEFAULT_MODEL
    if params.negative_prompt is not None and model not in NEGATIVE_PROMPT_MODELS:
        return "negative_prompt"
    return None


def _unreadable(what: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"{PROVIDER} answered with an unreadable body ({what})")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise _unreadable("not JSON") from exc
    if not isinstance(body, dict):
        raise _unreadable("not a JSON object")
    return body


def _detail(response: httpx.Response) -> tuple[str, str | None]:
    """The error's text and, when the body names one, the upstream's own error code."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text.strip()[:300] or response.reason_phrase, None
    if isinstance(detail, dict):
        code = detail.get("error")
        return str(detail.get("message") or code or detail), code if isinstance(code, str) else None
    if isinstance(detail, list):
        messages = [str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in detail]
        return "; ".join(messages) or response.reason_phrase, None
    return str(detail) if detail else response.reason_phrase, None


def _retry_after(headers: httpx.Headers, now: float) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds or a date), else ``X-RateLimit-Reset``."""
    retry_after = headers.get("retry-after")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    try:
        reset = float(headers.get("x-ratelimit-reset", ""))
    except ValueError:
        return None
    return max(0.0, reset - now if reset > 1_000_000_000 else reset)


def _failure(response: httpx.Response) -> Failed | None:
    """``None`` for a 2xx; a ``Failed`` from ``HTTP_ERRORS``; raises for 5xx."""
    status = response.status_code
    if status < 300:
        return None
    if status >= 500:
        raise ProviderUnavailable(f"{PROVIDER} answered HTTP {status}")
    meaning = HTTP_ERRORS.get(status, UNLISTED_ERROR)
    message, code = _detail(response)
    retry_after = _retry_after(response.headers, time.time()) if status == 429 else None
    return Failed(
        code=meaning.code,
        message=f"{PROVIDER} HTTP {status}: {message}",
        provider_code=code or f"http_{status}",
        retryable=meaning.retryable,
        retry_after_s=retry_after,
    )


def _image_type(response: httpx.Response) -> str:
    declared = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
    if declared.startswith("image/"):
        return declared
    for magic, content_type in _IMAGE_MAGIC.items():
        if response.content.startswith(magic):
            return content_type
    raise _unreadable(f"output is {declared or 'untyped'}, not an image")


class PixelApiAdapter(Adapter):
    name: ClassVar[str] = PROVIDER
    bindings: ClassVar[Mapping[Operation, Binding]] = {
        Operation.image_generate: Binding(
            parameters=frozenset({"prompt", "model", "negative_prompt", "width", "height", "seed"}),
            values={"model": frozenset(MODELS)},
            price=5,
            check=_generate_refusal,
        ),
        Operation.image_remove_background: Binding(parameters=frozenset({"image"}), price=4),
        Operation.image_upscale: Binding(
            parameters=frozenset({"image", "scale"}),
            values={"scale": frozenset({UPSCALE_FACTOR})},
            price=20,
        ),
    }

    def _headers(self, call: Call) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        key = self.credential(call).api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def submit(self, call: Call) -> SubmitResult:
        build = self._builders().get(call.operation)
        if build is None:
            message = f"{PROVIDER} does not serve {call.operation.value}"
            return Failed(ErrorCode.unsupported_operation, message)
        request = await build(call)
        url = f"{self.base_url}{ENDPOINTS[call.operation]}"
        with upstream_errors(PROVIDER):
            response = await self.client.post(
                url, headers=self._headers(call), timeout=self.config.timeout_s, **request
            )
        if (failed := _failure(response)) is not None:
            return failed
        generation_id = _json_object(response).get("generation_id")
        if not isinstance(generation_id, str) or not generation_id:
            raise _unreadable("no generation_id")
        return Submitted(generation_id, poll_after_s=self.config.poll_interval_s)

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        url = f"{self.base_url}/v1/image/{quote(provider_job_id, safe='')}"
        with upstream_errors(PROVIDER):
            response = await self.client.get(
                url, headers=self._headers(call), timeout=self.config.timeout_s
            )
        if (failed := _failure(response)) is not None:
            return failed
        body = _json_object(response)
        status = body.get("status")
        meaning = STATUSES.get(status) if isinstance(status, str) else None
        if meaning is None:
            raise _unreadable(f"unknown status {status!r}")
        if meaning == "running":
            return Progress(poll_after_s=self.config.poll_interval_s)
        if isinstance(meaning, Meaning):
            error = body.get("error") or body.get("error_message") or f"job {status}"
            message = f"{PROVIDER} job {status}: {error}"
            return Failed(meaning.code, message, provider_code=status, retryable=meaning.retryable)
        return await self._download(body.get("output_url"))

    async def _download(self, output_url: object) -> Succeeded:
        if not isinstance(output_url, str) or not output_url.startswith(("http://", "https://")):
            raise _unreadable("completed without an output_url")
        with upstream_errors(PROVIDER):
            response = await self.client.get(
                output_url, headers={"User-Agent": USER_AGENT}, timeout=self.config.timeout_s
            )
        if response.status_code != 200 or not response.content:
            raise ProviderUnavailable(
                f"{PROVIDER} output download answered HTTP {response.status_code}"
            )
        return Succeeded(files=[OutputFile(response.content, _image_type(response))])

    # requests ---------------------------------------------------------------------------------

    def _builders(self) -> Mapping[Operation, Callable[[Call], Awaitable[dict[str, Any]]]]:
        return {
            Operation.image_generate: self._generate_request,
            Operation.image_remove_background: self._image_request,
            Operation.image_upscale: self._image_request,
        }

    async def _generate_request(self, call: Call) -> dict[str, Any]:
        params = call.params
        assert isinstance(params, GenerateImage)
        body: dict[str, Any] = {
            "model": MODELS[params.model or DEFAULT_MODEL],
            "prompt": params.prompt,
        }
        for name in ("negative_prompt", "width", "height", "seed"):
            if (value := getattr(params, name)) is not None:
                body[name] = value
        return {"json": body}

    async def _image_request(self, call: Call) -> dict[str, Any]:
        """JSON ``image_url`` for a URL reference, else the bytes as the multipart ``image``."""
        ref: MediaInput = call.params.media()["image"]
        if ref.url is not None:
            return {"json": {"image_url": call.media.public_url(ref)}}
        media = await call.media.read(ref)
        extension = media.content_type.rpartition("/")[2] or "bin"
        return {"files": {"image": (f"image.{extension}", media.content, media.content_type)}}
