"""PixelAPI emulator: the image endpoints of ``providers/pixelapi.txt``, kept in memory.

Routes after ``/_sandbox/pixelapi`` (the provider's own paths): ``POST /v1/image/generate``
(JSON), ``POST /v1/image/remove-background`` and ``/v1/image/upscale`` (multipart ``image`` or
JSON ``image_url``, not both, 10 MB), ``GET /v1/image/{generation_id}`` (``queued`` for the
first fifth of ``timing.job_s``, ``processing``, then ``completed``, ``failed`` or
``blocked``), ``GET /v1/models``, ``GET /v1/account/balance``, and the results at
``GET /outputs/images/{yyyy}/{mm}/{dd}/{name}.png``: real PNGs, public (no key), kept 24 h.

How the document is read (``app/providers/pixelapi.py`` keeps the same readings):

- **User-Agent.** "Requests without a proper User-Agent may be blocked by our CDN" (403), and
  urllib users "MUST set" one: 403 when the header is missing or blank, or when every product
  token in it is a stock HTTP library or runtime (``python-requests/…``, ``python-httpx/…``,
  ``Python-urllib/…``, ``Python/… aiohttp/…``, ``curl/…``, ``Wget/…``, ``Go-http-client/…``).
  One custom product anywhere (``MyApp/1.0``) passes. The CDN answers before the API, so that
  403 is Cloudflare's plain text ``error code: 1010``, on every path.
- **Order of checks:** User-Agent (403) → key (401) → rate limit (429, submissions) → fault →
  validation (400/413/422) → credits (402). Errors are FastAPI's ``{"detail": …}`` (a 422
  carries FastAPI's list of ``{"type", "loc", "msg", "input"}``; 402 the document's sentence).
- **Rate limit.** The sandbox key is on the Scale plan: 300,000 credits, 200 requests/min over
  a sliding minute. The limit meters submissions, not status polls: the document asks for a
  poll every 2–3 s while the Free plan allows 5 requests/min, which only fit together if polls
  are free. Every response carries the two headers the document names,
  ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (Unix seconds when a slot frees, GitHub's
  convention); a 429 sends no ``Retry-After`` ("check X-RateLimit-Reset").
- **Credits.** The document quotes two prices (table and FAQ: remove background 2, generation
  3; endpoint headings and every response's ``credits_used``: 4 and 5; upscale 20 in both). An
  account is charged what responses report: 4 / 5 / 20, also listed in ``/v1/models``.
  ``failed`` and ``blocked`` jobs are refunded ("no credits are charged for blocked jobs").
- **Bodies.** Submissions answer 200 (the code table's success) with ``generation_id``,
  ``status``, ``operation`` (``model`` for generation), ``credits_used``. Polls answer as
  documented: ``id`` (not ``generation_id``), ``status``, ``output_url`` (null until
  completed), ``operation`` (``generate``, plus ``model``, for generation), ``credits_used``,
  ``created_at``; ``failed``/``blocked`` add ``error`` ("check error field") and charge 0.
- **Sizes.** Generation renders ``width``×``height`` (512–1536, default 1024; ``steps`` within
  the model's range; ``negative_prompt`` ignored by FLUX). Background removal gives a PNG with
  alpha at the input's size, upscale a PNG at 4× it. "Maximum resolution is 4096×4096" holds
  in and out: an input over 4096 px, or an upscale input over 1024 px, is a 400.
- **image_url** (JSON, or a form field without a file) is downloaded at submission under the
  same 10 MB cap; a URL that cannot be fetched or is not an image is a 400.
- **Faults** are consulted on submissions and status polls only: ``http_500`` → 500,
  ``timeout`` → no answer for an hour, ``rate_limit`` → 429, ``garbage`` → 200 with HTML,
  ``no_credits`` → 402. ``blocked`` / ``no_face`` on a submission make the job end ``blocked``
  / ``failed`` ("No face detected…"); on a poll they end the polled job so at once (a finished
  job keeps its outcome).
- ``timing.latency_s`` is unused: PixelAPI answers at once and works asynchronously.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from app.sandbox import images
from app.sandbox.control import Fault, SandboxControl
from app.sandbox.credentials import PIXELAPI_API_KEY

if TYPE_CHECKING:
    from app.sandbox.app import SandboxTiming

PROVIDER = "pixelapi"
PLAN = "scale"
ACCOUNT_EMAIL = "sandbox@pixelapi.dev"
PLAN_CREDITS = 300_000.0
REQUESTS_PER_MINUTE = 200
PRICING_URL = "https://pixelapi.dev/app/#pricing"

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_SIDE = 4096
UPSCALE_FACTOR = 4
FETCH_TIMEOUT_S = 10.0
FETCH_USER_AGENT = "PixelAPI-Fetcher/1.0"
ACCEPTED_FORMATS = frozenset({"jpeg", "png", "webp"})
QUEUED_SHARE = 0.2
"""Share of a job's duration spent ``queued`` before ``processing``."""
OUTPUT_TTL_S = 24 * 3600
OUTPUT_ROUTE = "pixelapi_output"

Operation = Literal["generate", "remove-background", "upscale"]
Outcome = Literal["completed", "failed", "blocked"]

CREDITS: dict[Operation, float] = {"generate": 5.0, "remove-background": 4.0, "upscale": 20.0}
PREFIXES: dict[Operation, str] = {"generate": "", "remove-background": "bg-rm-", "upscale": "up-"}
STEPS = {"flux-schnell": (1, 8), "sdxl": (20, 50)}
FAULT_OUTCOMES: dict[Fault, tuple[Outcome, str]] = {
    Fault.blocked: ("blocked", "Content policy violation: the content was blocked by our filters."),
    Fault.no_face: ("failed", "No face detected in the image."),
}
STOCK_PRODUCTS = frozenset(
    {
        "python-requests", "python-httpx", "python-urllib", "python", "aiohttp", "httpx",
        "curl", "wget", "go-http-client", "okhttp", "java", "node", "node-fetch", "undici",
        "axios", "libwww-perl",
    }
)  # fmt: skip
_SIDES = {"width": [512, 1536], "height": [512, 1536]}
MODELS: list[dict[str, object]] = [
    {"id": "flux-schnell", "endpoint": "POST /v1/image/generate", "credits": 5.0,
     "speed": "~3–5s", "capabilities": {**_SIDES, "steps": [1, 8], "negative_prompt": False}},
    {"id": "sdxl", "endpoint": "POST /v1/image/generate", "credits": 5.0,
     "speed": "~8–13s", "capabilities": {**_SIDES, "steps": [20, 50], "negative_prompt": True}},
    {"id": "upscale-4x", "endpoint": "POST /v1/image/upscale", "credits": 20.0,
     "speed": "~10–30s", "capabilities": {"scale": 4, "max_output": [4096, 4096]}},
    {"id": "remove-background", "endpoint": "POST /v1/image/remove-background", "credits": 4.0,
     "speed": "~2–3s", "capabilities": {"output": "png", "alpha": True}},
]  # fmt: skip


def _now() -> float:
    """The clock of job lifecycles (tests may replace it)."""
    return time.monotonic()


class _Reject(Exception):
    """A request refused with the API's ``{"detail": …}`` body."""

    def __init__(self, status: int, detail: object) -> None:
        super().__init__(status)
        self.status, self.detail = status, detail


class _GenerateBody(BaseModel):
    """``POST /v1/image/generate`` as documented (FastAPI validates it the same way)."""

    model_config = ConfigDict(extra="ignore")

    model: Literal["flux-schnell", "sdxl"]
    prompt: str = Field(min_length=1)
    negative_prompt: str | None = None
    width: int = Field(default=1024, ge=512, le=1536)
    height: int = Field(default=1024, ge=512, le=1536)
    steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None

    @model_validator(mode="after")
    def _steps_in_model_range(self) -> _GenerateBody:
        low, high = STEPS[self.model]
        if self.steps is not None and not low <= self.steps <= high:
            raise ValueError(f"steps must be from {low} to {high} for {self.model}")
        return self


@dataclass(frozen=True)
class _Work:
    """What a submission asks for: the output picture's size and look."""

    width: int
    height: int
    alpha: bool = False
    model: str | None = None
    seed: int | None = None


@dataclass
class _Job:
    id: str
    operation: Operation
    work: _Work
    credits: float
    created_s: float
    ends_s: float
    created_at: str
    output_path: str
    outcome: Outcome = "completed"
    error: str | None = None
    refunded: bool = False


@dataclass
class _Account:
    credits: float = field(default_factory=lambda: PLAN_CREDITS)
    window: deque[float] = field(default_factory=deque)
    """Wall-clock times of the requests counted in the last minute."""

    def admit(self, now: float) -> bool:
        self._trim(now)
        if len(self.window) >= REQUESTS_PER_MINUTE:
            return False
        self.window.append(now)
        return True

    def headers(self, now: float) -> dict[str, str]:
        self._trim(now)
        reset = self.window[0] + 60 if self.window else now
        return {
            "X-RateLimit-Remaining": str(max(0, REQUESTS_PER_MINUTE - len(self.window))),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }

    def _trim(self, now: float) -> None:
        while self.window and self.window[0] <= now - 60:
            self.window.popleft()


def _proper_user_agent(agent: str | None) -> bool:
    """False when the agent is missing, blank, or names only stock libraries and runtimes."""
    depth, kept = 0, []
    for char in agent or "":  # drop "(comments)", keep product tokens
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    names = [token.split("/", 1)[0].lower() for token in "".join(kept).split()]
    return any(name not in STOCK_PRODUCTS for name in names)


def _bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _field_error(kind: str, name: str, msg: str, value: object = None) -> dict[str, object]:
    return {"type": kind, "loc": ["body", name], "msg": msg, "input": value}


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise _Reject(422, [_field_error("json_invalid", "body", "JSON decode error")]) from exc
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        raise _Reject(422, [_field_error("model_attributes_type", "body", msg, body)])
    return body


async def _parse_generate(request: Request) -> _Work:
    try:
        body = _GenerateBody.model_validate(await _json_object(request))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise _Reject(422, [{**e, "loc": ["body", *e["loc"]]} for e in errors]) from exc
    return _Work(body.width, body.height, model=body.model, seed=body.seed)


async def _read_multipart(request: Request) -> tuple[bytes | None, object]:
    try:
        async with request.form() as form:
            image, url = form.get("image"), form.get("image_url")
            if isinstance(image, str):
                raise _Reject(422, [_field_error("value_error", "image", "Expected a file")])
            return (await image.read() if isinstance(image, UploadFile) else None), url
    except (MultiPartException, HTTPException) as exc:
        raise _Reject(400, f"Malformed multipart body: {exc}") from exc


def _measure(data: bytes) -> tuple[int, int]:
    if len(data) > MAX_UPLOAD_BYTES:
        raise _Reject(413, "File too large. Maximum size is 10MB.")
    info = images.inspect(data)
    if info is None or info.format not in ACCEPTED_FORMATS:
        raise _Reject(400, "Invalid image file. Supported formats: JPEG, PNG, WebP.")
    if max(info.width, info.height) > MAX_SIDE:
        detail = f"Image is {info.width}x{info.height}; maximum resolution is 4096x4096 pixels."
        raise _Reject(400, detail)
    return info.width, info.height


async def _input_size(request: Request) -> tuple[int, int]:
    """The size of the picture worked on: an uploaded ``image`` or an ``image_url``."""
    content_type = request.headers.get("content-type", "").lower()
    data: bytes | None = None
    if content_type.startswith("multipart/form-data"):
        data, url = await _read_multipart(request)
    elif content_type.startswith("application/json"):
        url = (await _json_object(request)).get("image_url")
    else:
        detail = "Send multipart/form-data with an image file, or application/json with image_url."
        raise _Reject(400, detail)
    if data is not None and url is not None:
        raise _Reject(400, "Provide either image (file upload) or image_url (JSON), not both.")
    if data is not None:
        return _measure(data)
    if url is None:
        raise _Reject(422, [_field_error("missing", "image", "Field required")])
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        msg = "image_url must be a public http(s) URL"
        raise _Reject(422, [_field_error("url_parsing", "image_url", msg, url)])
    return _measure(await _download(url))


async def _download(url: str) -> bytes:
    """The picture at ``image_url``, read up to one byte past the cap."""
    data = bytearray()
    headers = {"User-Agent": FETCH_USER_AGENT}
    try:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=True) as client:
            async with client.stream("GET", url, headers=headers) as response:
                if not response.is_success:
                    detail = f"Could not download image_url (HTTP {response.status_code})."
                    raise _Reject(400, detail)
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_UPLOAD_BYTES:
                        break
    except httpx.HTTPError as exc:
        raise _Reject(400, "Could not download image_url.") from exc
    return bytes(data)


async def _parse_remove_background(request: Request) -> _Work:
    width, height = await _input_size(request)
    return _Work(width, height, alpha=True)


async def _parse_upscale(request: Request) -> _Work:
    width, height = await _input_size(request)
    if max(width, height) * UPSCALE_FACTOR > MAX_SIDE:
        detail = (
            f"Image is {width}x{height}; the 4x output would exceed the maximum resolution of "
            "4096x4096 pixels. Use an input of at most 1024x1024."
        )
        raise _Reject(400, detail)
    return _Work(width * UPSCALE_FACTOR, height * UPSCALE_FACTOR)


PARSERS = {
    "generate": _parse_generate,
    "remove-background": _parse_remove_background,
    "upscale": _parse_upscale,
}


class _Emulator:
    """One PixelAPI account (the sandbox key) and its jobs."""

    def __init__(self, control: SandboxControl, timing: SandboxTiming) -> None:
        self.control, self.timing = control, timing
        self.account = _Account()
        self.jobs: dict[str, _Job] = {}
        self.outputs: dict[str, str] = {}
        """Output path → generation id."""
        self.order: deque[str] = deque()

    # answers ----------------------------------------------------------------------------------

    def _json(self, body: object, status: int = 200) -> Response:
        return JSONResponse(body, status, headers=self.account.headers(time.time()))

    def _error(self, status: int, detail: object) -> Response:
        return self._json({"detail": detail}, status)

    def _insufficient(self, required: float, available: float) -> Response:
        detail = (
            f"Insufficient credits. Required: {required:g}, available: {max(available, 0):g}. "
            f"Upgrade at {PRICING_URL}"
        )
        return self._error(402, detail)

    def _rate_limited(self) -> Response:
        detail = (
            f"Rate limit exceeded: {REQUESTS_PER_MINUTE} requests/min on the {PLAN} plan. "
            "Check X-RateLimit-Reset and retry; consider upgrading."
        )
        return self._error(429, detail)

    def _gate(
        self, request: Request, endpoint: str, *, key: bool = True, metered: bool = False
    ) -> Response | None:
        """Count the request; refuse it as the CDN, the key check or the plan limit would."""
        self.control.count_request(PROVIDER, endpoint)
        headers = self.account.headers(time.time())
        if not _proper_user_agent(request.headers.get("user-agent")):
            return PlainTextResponse("error code: 1010", 403, headers=headers)
        if not key:
            return None
        given = _bearer(request.headers.get("authorization"))
        if given is None:
            return self._error(401, "Missing API key. Use Authorization: Bearer YOUR_API_KEY")
        if given != PIXELAPI_API_KEY:
            return self._error(401, "Invalid API key")
        if metered and not self.account.admit(time.time()):
            return self._rate_limited()
        return None

    async def _serve_fault(self, fault: Fault | None, credits: float) -> Response | None:
        """The answer an armed fault puts in place of the real one (``None``: answer normally)."""
        if fault is Fault.timeout:
            await asyncio.sleep(3600)
        if fault in (Fault.http_500, Fault.timeout):
            return self._error(500, "Internal server error. Please retry in a few seconds.")
        if fault is Fault.rate_limit:
            return self._rate_limited()
        if fault is Fault.no_credits:
            return self._insufficient(credits, 0.0)
        if fault is Fault.garbage:
            html = "<html><body><h1>Service temporarily unavailable</h1></body></html>"
            headers = self.account.headers(time.time())
            return Response(html, 200, headers=headers, media_type="text/html")
        return None

    # jobs -------------------------------------------------------------------------------------

    def _start(self, operation: Operation, work: _Work, fault: Fault | None) -> _Job:
        now, stamp = _now(), datetime.now(UTC)
        job = _Job(
            id=f"{PREFIXES[operation]}{uuid.uuid4()}",
            operation=operation,
            work=work,
            credits=CREDITS[operation],
            created_s=now,
            ends_s=now + self.timing.job_s,
            created_at=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            output_path=f"{stamp:%Y/%m/%d}/{uuid.uuid4().hex}.png",
        )
        if fault in FAULT_OUTCOMES:
            job.outcome, job.error = FAULT_OUTCOMES[fault]
        self.account.credits -= job.credits
        self.jobs[job.id], self.outputs[job.output_path] = job, job.id
        self.order.append(job.id)
        while (oldest := self.jobs[self.order[0]]).created_s < now - OUTPUT_TTL_S:
            self.order.popleft()
            del self.jobs[oldest.id], self.outputs[oldest.output_path]
        return job

    def _status(self, job: _Job, now: float) -> str:
        """Where the job is at ``now``; a failed or blocked job is refunded once."""
        if now >= job.ends_s:
            if job.outcome != "completed" and not job.refunded:
                job.refunded = True
                self.account.credits += job.credits
            return job.outcome
        queued_until = job.created_s + QUEUED_SHARE * (job.ends_s - job.created_s)
        return "queued" if now < queued_until else "processing"

    def _status_body(self, request: Request, job: _Job, status: str) -> dict[str, object]:
        body: dict[str, object] = {
            "id": job.id,
            "status": status,
            "output_url": None,
            "operation": job.operation,
            "credits_used": job.credits,
            "created_at": job.created_at,
        }
        if job.work.model is not None:
            body["model"] = job.work.model
        if status == "completed":
            year, month, day, name = job.output_path.split("/")
            url = request.url_for(OUTPUT_ROUTE, year=year, month=month, day=day, name=name)
            body["output_url"] = str(url)
        elif status in ("failed", "blocked"):
            body["error"], body["credits_used"] = job.error, 0.0
        return body

    # endpoints --------------------------------------------------------------------------------

    async def submit(self, request: Request, operation: Operation) -> Response:
        if (denied := self._gate(request, f"/v1/image/{operation}", metered=True)) is not None:
            return denied
        cost = CREDITS[operation]
        fault = self.control.take_fault(PROVIDER)
        if (served := await self._serve_fault(fault, cost)) is not None:
            return served
        try:
            work = await PARSERS[operation](request)
        except _Reject as rejected:
            return self._error(rejected.status, rejected.detail)
        if self.account.credits < cost:
            return self._insufficient(cost, self.account.credits)
        job = self._start(operation, work, fault)
        self.control.count_submission(PROVIDER)
        kind = {"model": work.model} if work.model else {"operation": operation}
        return self._json(
            {"generation_id": job.id, "status": "queued", **kind, "credits_used": cost}
        )

    async def job_status(self, request: Request, generation_id: str) -> Response:
        if (denied := self._gate(request, "/v1/image/{generation_id}")) is not None:
            return denied
        fault = self.control.take_fault(PROVIDER)
        job = self.jobs.get(generation_id)
        if (served := await self._serve_fault(fault, job.credits if job else 0.0)) is not None:
            return served
        if job is None:
            return self._error(404, "Generation not found")
        now = _now()
        if fault in FAULT_OUTCOMES and now < job.ends_s:
            (job.outcome, job.error), job.ends_s = FAULT_OUTCOMES[fault], now
        return self._json(self._status_body(request, job, self._status(job, now)))

    async def models(self, request: Request) -> Response:
        return self._gate(request, "/v1/models") or self._json({"models": MODELS})

    async def balance(self, request: Request) -> Response:
        if (denied := self._gate(request, "/v1/account/balance")) is not None:
            return denied
        now = _now()
        for job in self.jobs.values():
            self._status(job, now)
        credits = max(0.0, self.account.credits)
        return self._json({"credits_remaining": credits, "plan": PLAN, "email": ACCOUNT_EMAIL})

    async def output(
        self, request: Request, year: str, month: str, day: str, name: str
    ) -> Response:
        if (denied := self._gate(request, "/outputs", key=False)) is not None:
            return denied
        job = self.jobs.get(self.outputs.get(f"{year}/{month}/{day}/{name}", ""))
        if job is None or self._status(job, _now()) != "completed":
            return self._error(404, "Not Found")
        work = job.work
        seed = work.seed if work.seed is not None else zlib.crc32(job.id.encode())
        png = await asyncio.to_thread(
            images.render, work.width, work.height, "png", seed, work.alpha
        )
        return Response(png, 200, headers=self.account.headers(time.time()), media_type="image/png")


def router(control: SandboxControl, timing: SandboxTiming) -> APIRouter:
    """The PixelAPI routes, mounted by the sandbox app under ``/_sandbox/pixelapi``."""
    emulator = _Emulator(control, timing)
    routes = APIRouter()

    def add_submit(operation: Operation) -> None:
        async def endpoint(request: Request) -> Response:
            return await emulator.submit(request, operation)

        path = f"/v1/image/{operation}"
        name = f"pixelapi_{operation}"
        routes.add_api_route(path, endpoint, methods=["POST"], name=name, response_model=None)

    for operation in CREDITS:
        add_submit(operation)
    for path, handler, name in (
        ("/v1/image/{generation_id}", emulator.job_status, "pixelapi_status"),
        ("/v1/models", emulator.models, "pixelapi_models"),
        ("/v1/account/balance", emulator.balance, "pixelapi_balance"),
        ("/outputs/images/{year}/{month}/{day}/{name}", emulator.output, OUTPUT_ROUTE),
    ):
        routes.add_api_route(path, handler, methods=["GET"], name=name, response_model=None)
    return routes
