"""PixelAPI emulator: the endpoints of ``providers/pixelapi.txt``, kept in memory.

Routes after ``/_sandbox/pixelapi`` (the provider's own paths):

- submissions: ``POST /v1/image/{generate, remove-background, replace-background, upscale,
  restore-face, remove-object}``, ``POST /v1/audio/generate``, ``POST /v1/video/generate``,
  ``POST /v1/virtual-tryon``;
- status: ``GET /v1/image/{generation_id}`` (every generation: "works for all job types"),
  ``GET /v1/video/{generation_id}`` (video generations, in the video section's shape),
  ``GET /v1/virtual-tryon/jobs/{job_id}`` (try-on, the result inline as base64); a job is
  ``queued`` for the first fifth of ``timing.job_s``, ``processing``, then ``completed``,
  ``failed`` or ``blocked``;
- account: ``GET /v1/models``, ``GET /v1/account/balance``, ``GET /v1/account/usage``;
- results: ``GET /outputs/{images,audio,videos}/{yyyy}/{mm}/{dd}/{name}``: real PNG, WAV and
  MP4 files, public (no key), kept 24 h.

This module holds the account (credits, rate limit), the answers, and the routes; the
User-Agent and key checks and the image request shapes are in ``pixelapi_wire``, audio and
video in ``pixelapi_media_wire``, try-on in ``pixelapi_tryon``, the job model, lifecycle,
outputs and catalogue in ``pixelapi_jobs``.

How the document is read (``app/providers/pixelapi.py`` keeps the same readings):

- **Order of checks:** User-Agent (403) → key (401) → rate limit (429, submissions) → fault →
  validation (400/413/422) → credits (402). Errors are FastAPI's ``{"detail": …}`` (a 422
  carries FastAPI's list of ``{"type", "loc", "msg", "input"}``; 402 the document's sentence;
  try-on's own checks its structured ``{"error", "message", "guidance"}``).
- **Rate limit.** The sandbox key is on the Scale plan: 300,000 credits, 200 requests/min over
  a sliding minute. The limit meters submissions, not status polls: the document asks for a
  poll every 2–3 s while the Free plan allows 5 requests/min, which only fit together if polls
  are free. Every response carries the two headers the document names,
  ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (Unix seconds when a slot frees, GitHub's
  convention); a 429 sends no ``Retry-After`` ("check X-RateLimit-Reset").
- **Credits.** The document quotes two prices (table and FAQ against endpoint headings and
  responses' ``credits_used``); an account is charged what responses report: generation 5,
  remove background 4, replace 8, upscale 20, restore face 5, remove object 8, audio 5 / 10,
  video 50 / 100, try-on 25, as ``/v1/models`` lists them. ``failed`` and ``blocked`` jobs are
  refunded ("no credits are charged for blocked jobs").
- **Bodies.** Submissions answer 200 (the code table's success): image jobs
  ``generation_id``, ``status``, ``operation`` (``model`` for generation), ``credits_used``;
  audio adds ``model``, ``duration``, ``estimated_seconds``; video ``model`` (``wan2.1``) and
  ``estimated_seconds``; try-on ``job_id``, ``status``, ``credits_used``. ``GET
  /v1/image/{id}`` answers ``id`` (not ``generation_id``), ``status``, ``output_url`` (null
  until completed), ``operation``, ``credits_used``, ``created_at`` (plus ``model`` for
  generations); ``failed``/``blocked`` add ``error`` and charge 0. ``GET /v1/video/{id}``
  answers ``generation_id``, ``status``, ``output_url``, ``processing_ms`` (null until
  completed) and, when it failed, ``error_message`` (the video example reads it). Try-on
  answers ``status``, ``result_image_b64``, ``inference_time_ms`` and ``error_message``; a
  blocked try-on is ``blocked`` like every job ("Content Policy"), though its section lists
  four statuses. ``/v1/account/usage?limit=`` (1–100, default 20) lists the newest jobs under
  ``usage`` (its body is not documented).
- **Faults** are consulted on submissions and status polls only: ``http_500`` → 500 (try-on
  submissions: its documented 503 ``gpu_out_of_memory``), ``timeout`` → no answer for an hour,
  ``rate_limit`` → 429, ``garbage`` → 200 with HTML, ``no_credits`` → 402. ``blocked`` /
  ``no_face`` on a submission make the job end ``blocked`` / ``failed`` ("No face
  detected…"), except that ``no_face`` on a try-on submission is its documented 422
  ``body_segmentation_failed``; on a poll they end the polled job so at once (a finished job
  keeps its outcome).
- ``timing.latency_s`` is unused: PixelAPI answers at once and works asynchronously.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from app.sandbox.control import DroppedConnection, Fault, FaultTarget, SandboxControl
from app.sandbox.credentials import PIXELAPI_API_KEY
from app.sandbox.pixelapi_jobs import (
    CREDITS,
    IMAGE_OPERATIONS,
    MODELS,
    Job,
    Jobs,
    Operation,
    Work,
    end_now,
    render_output,
    stage,
)
from app.sandbox.pixelapi_media_wire import estimated_seconds, parse_audio, parse_video
from app.sandbox.pixelapi_tryon import fault_detail, parse_try_on
from app.sandbox.pixelapi_wire import FETCH_USER_AGENT as FETCH_USER_AGENT  # re-exported
from app.sandbox.pixelapi_wire import (
    IMAGE_PARSERS,
    Refusal,
    bearer,
    field_error,
    proper_user_agent,
)
from app.sandbox.timing import SandboxTiming

PROVIDER = "pixelapi"
PLAN = "scale"
ACCOUNT_EMAIL = "sandbox@pixelapi.dev"
PLAN_CREDITS = 300_000.0
REQUESTS_PER_MINUTE = 200
PRICING_URL = "https://pixelapi.dev/app/#pricing"
OUTPUT_ROUTE = "pixelapi_output"
TRY_ON: Operation = "virtual-tryon"
VIDEO: Operation = "generate-video"
USAGE_LIMITS = range(1, 101)
GENERATIONS: frozenset[Operation] = frozenset(CREDITS) - {TRY_ON}
"""What ``GET /v1/image/{id}`` answers for: every job but try-on's."""

PARSERS: dict[Operation, Callable[[Request], Awaitable[Work]]] = {
    **IMAGE_PARSERS,
    "generate-audio": parse_audio,
    VIDEO: parse_video,
    TRY_ON: parse_try_on,
}
SUBMIT_PATHS: dict[Operation, str] = {
    **{operation: f"/v1/image/{operation}" for operation in IMAGE_OPERATIONS},
    "generate-audio": "/v1/audio/generate",
    VIDEO: "/v1/video/generate",
    TRY_ON: "/v1/virtual-tryon",
}


def _now() -> float:
    """The clock of job lifecycles (tests may replace it)."""
    return time.monotonic()


@dataclass
class _Account:
    credits: float = field(default_factory=lambda: PLAN_CREDITS)
    window: deque[float] = field(default_factory=deque)
    """Wall-clock times of the requests counted in the last minute."""
    plan_rate: float | None = None
    """Requests per minute of a bigger plan the sandbox runs (None: the documented plan's)."""

    @property
    def limit(self) -> int:
        return int(self.plan_rate or REQUESTS_PER_MINUTE)

    def admit(self, now: float) -> bool:
        self._trim(now)
        if len(self.window) >= self.limit:
            return False
        self.window.append(now)
        return True

    def headers(self, now: float) -> dict[str, str]:
        self._trim(now)
        reset = self.window[0] + 60 if self.window else now
        return {
            "X-RateLimit-Remaining": str(max(0, self.limit - len(self.window))),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }

    def _trim(self, now: float) -> None:
        while self.window and self.window[0] <= now - 60:
            self.window.popleft()


POLL_RETRY_AFTER_S = 1
"""``Retry-After`` of a rate-limited status poll (a fault: polls are not metered)."""


class _Emulator:
    """One PixelAPI account (the sandbox key) and its jobs."""

    def __init__(self, control: SandboxControl, timing: SandboxTiming) -> None:
        self.control, self.timing = control, timing
        self.account = _Account(plan_rate=self.timing.requests_per_minute.get(PROVIDER))
        self.jobs = Jobs()

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

    def _rate_limited(self, retry_after_s: int | None = None) -> Response:
        detail = (
            f"Rate limit exceeded: {self.account.limit} requests/min on the {PLAN} plan. "
            "Check X-RateLimit-Reset and retry; consider upgrading."
        )
        response = self._error(429, detail)
        if retry_after_s is not None:
            response.headers["Retry-After"] = str(retry_after_s)
        return response

    def _gate(
        self, request: Request, endpoint: str, *, key: bool = True, metered: bool = False
    ) -> Response | None:
        """Count the request; refuse it as the CDN, the key check or the plan limit would."""
        self.control.count_request(PROVIDER, endpoint)
        headers = self.account.headers(time.time())
        if not proper_user_agent(request.headers.get("user-agent")):
            return PlainTextResponse("error code: 1010", 403, headers=headers)
        if not key:
            return None
        given = bearer(request.headers.get("authorization"))
        if given is None:
            return self._error(401, "Missing API key. Use Authorization: Bearer YOUR_API_KEY")
        if given != PIXELAPI_API_KEY:
            return self._error(401, "Invalid API key")
        if metered and not self.account.admit(time.time()):
            return self._rate_limited()
        return None

    async def _serve_fault(
        self, fault: Fault | None, credits: float, operation: Operation | None = None
    ) -> Response | None:
        """The answer an armed fault puts in place of the real one (``None``: answer normally);
        ``operation`` is set on submissions."""
        if fault is Fault.timeout:
            await asyncio.sleep(3600)
        if operation == TRY_ON and fault is Fault.http_500:
            return self._error(503, fault_detail("gpu_out_of_memory"))
        if operation == TRY_ON and fault is Fault.no_face:
            return self._error(422, fault_detail("body_segmentation_failed"))
        if fault in (Fault.http_500, Fault.timeout):
            return self._error(500, "Internal server error. Please retry in a few seconds.")
        if fault is Fault.http_502:
            return self._error(502, "Bad gateway")
        if fault is Fault.http_429:  # bare: no Retry-After, no rate-limit headers
            return JSONResponse({"detail": "Too many requests"}, 429)
        if fault is Fault.reset:
            return DroppedConnection()
        if fault is Fault.rate_limit:
            # Polls are not metered (only submissions are): the window's reset does not
            # apply to them, so a refused poll says when to ask again.
            return self._rate_limited(None if operation else POLL_RETRY_AFTER_S)
        if fault is Fault.no_credits:
            return self._insufficient(credits, 0.0)
        if fault is Fault.garbage:
            html = "<html><body><h1>Service temporarily unavailable</h1></body></html>"
            headers = self.account.headers(time.time())
            return Response(html, 200, headers=headers, media_type="text/html")
        return None

    # jobs -------------------------------------------------------------------------------------

    def _status(self, job: Job, now: float) -> str:
        """Where the job is at ``now``; a failed or blocked job is refunded once."""
        status = stage(job, now)
        if status in ("failed", "blocked") and not job.refunded:
            job.refunded = True
            self.account.credits += job.credits
        return status

    def _output_url(self, request: Request, job: Job) -> str:
        directory, year, month, day, name = job.output_path.split("/")
        return str(
            request.url_for(
                OUTPUT_ROUTE, directory=directory, year=year, month=month, day=day, name=name
            )
        )

    def _generation_body(self, request: Request, job: Job, status: str) -> dict[str, object]:
        """A job as ``GET /v1/image/{id}`` shows it."""
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
            body["output_url"] = self._output_url(request, job)
        elif status in ("failed", "blocked"):
            body["error"], body["credits_used"] = job.error, 0.0
        return body

    def _video_body(self, request: Request, job: Job, status: str) -> dict[str, object]:
        """A video job as ``GET /v1/video/{id}`` shows it."""
        body: dict[str, object] = {
            "generation_id": job.id,
            "status": status,
            "output_url": None,
            "processing_ms": None,
        }
        if status == "completed":
            body["output_url"] = self._output_url(request, job)
            body["processing_ms"] = job.processing_ms
        elif status in ("failed", "blocked"):
            body["error_message"] = job.error
        return body

    async def _try_on_body(self, job: Job, status: str) -> dict[str, object]:
        """A try-on job as ``GET /v1/virtual-tryon/jobs/{id}`` shows it."""
        body: dict[str, object] = {
            "status": status,
            "result_image_b64": None,
            "inference_time_ms": None,
        }
        if status == "completed":
            png, _ = await asyncio.to_thread(render_output, job)
            body["result_image_b64"] = base64.b64encode(png).decode("ascii")
            body["inference_time_ms"] = job.processing_ms
        elif status in ("failed", "blocked"):
            body["error_message"] = job.error
        return body

    @staticmethod
    def _submitted(job: Job) -> dict[str, object]:
        """The submission's answer."""
        work = job.work
        if job.operation == TRY_ON:
            return {"job_id": job.id, "status": "queued", "credits_used": round(job.credits)}
        body: dict[str, object] = {"generation_id": job.id, "status": "queued"}
        if work.model is None:
            body["operation"] = job.operation
        else:
            body["model"] = work.model
        if work.kind == "audio":
            body["duration"] = round(work.duration_s)
        body["credits_used"] = job.credits
        if work.kind != "image":
            body["estimated_seconds"] = estimated_seconds(work)
        return body

    # endpoints --------------------------------------------------------------------------------

    async def submit(self, request: Request, operation: Operation) -> Response:
        if (denied := self._gate(request, SUBMIT_PATHS[operation], metered=True)) is not None:
            return denied
        fault = self.control.take_fault(PROVIDER, FaultTarget.submit, request.url.path)
        served = await self._serve_fault(fault, CREDITS[operation], operation)
        if served is not None:
            return served
        try:
            work = await PARSERS[operation](request)
        except Refusal as rejected:
            return self._error(rejected.status, rejected.detail)
        cost = work.credits if work.credits is not None else CREDITS[operation]
        if self.account.credits < cost:
            return self._insufficient(cost, self.account.credits)
        job = self.jobs.start(operation, work, fault, _now(), self.timing.job_s)
        self.account.credits -= job.credits
        self.control.count_submission(PROVIDER)
        return self._json(self._submitted(job))

    async def _polled(
        self, request: Request, endpoint: str, job_id: str, kinds: frozenset[Operation]
    ) -> tuple[Job, str] | Response:
        """The job ``job_id`` if it is one of ``kinds``, and where it is now; or the answer
        that replaces its status."""
        if (denied := self._gate(request, endpoint)) is not None:
            return denied
        fault = self.control.take_fault(PROVIDER, FaultTarget.poll, request.url.path)
        job = self.jobs.get(job_id)
        if job is not None and job.operation not in kinds:
            job = None
        if (served := await self._serve_fault(fault, job.credits if job else 0.0)) is not None:
            return served
        if job is None:
            return self._error(404, "Job not found" if TRY_ON in kinds else "Generation not found")
        if fault is Fault.unknown_status:
            return self._json({"job_id" if TRY_ON in kinds else "id": job_id, "status": "warming"})
        now = _now()
        end_now(job, fault, now)
        return job, self._status(job, now)

    async def job_status(self, request: Request, generation_id: str) -> Response:
        endpoint = "/v1/image/{generation_id}"
        polled = await self._polled(request, endpoint, generation_id, GENERATIONS)
        if isinstance(polled, Response):
            return polled
        return self._json(self._generation_body(request, *polled))

    async def video_status(self, request: Request, generation_id: str) -> Response:
        endpoint = "/v1/video/{generation_id}"
        polled = await self._polled(request, endpoint, generation_id, frozenset({VIDEO}))
        if isinstance(polled, Response):
            return polled
        return self._json(self._video_body(request, *polled))

    async def try_on_status(self, request: Request, job_id: str) -> Response:
        endpoint = "/v1/virtual-tryon/jobs/{job_id}"
        polled = await self._polled(request, endpoint, job_id, frozenset({TRY_ON}))
        if isinstance(polled, Response):
            return polled
        return self._json(await self._try_on_body(*polled))

    async def models(self, request: Request) -> Response:
        return self._gate(request, "/v1/models") or self._json({"models": MODELS})

    def _settle_all(self) -> None:
        now = _now()
        for job in self.jobs:
            self._status(job, now)

    async def balance(self, request: Request) -> Response:
        if (denied := self._gate(request, "/v1/account/balance")) is not None:
            return denied
        self._settle_all()
        credits = max(0.0, self.account.credits)
        return self._json({"credits_remaining": credits, "plan": PLAN, "email": ACCOUNT_EMAIL})

    async def usage(self, request: Request) -> Response:
        if (denied := self._gate(request, "/v1/account/usage")) is not None:
            return denied
        raw = request.query_params.get("limit", "20")
        if not raw.isdigit() or int(raw) not in USAGE_LIMITS:
            msg = "Input should be greater than or equal to 1 and less than or equal to 100"
            error = {**field_error("less_than_equal", "limit", msg, raw), "loc": ["query", "limit"]}
            return self._error(422, [error])
        self._settle_all()
        now = _now()
        newest = sorted(self.jobs, key=lambda job: job.created_s, reverse=True)[: int(raw)]
        entries = []
        for job in newest:
            status = self._status(job, now)
            body = self._generation_body(request, job, status)
            if job.operation == TRY_ON:
                body["output_url"] = None
            entries.append({"generation_id": body.pop("id"), **body})
        return self._json({"usage": entries, "count": len(entries)})

    async def output(
        self, request: Request, directory: str, year: str, month: str, day: str, name: str
    ) -> Response:
        if (denied := self._gate(request, "/outputs", key=False)) is not None:
            return denied
        job = self.jobs.by_output(f"{directory}/{year}/{month}/{day}/{name}")
        if job is None or job.operation == TRY_ON or self._status(job, _now()) != "completed":
            return self._error(404, "Not Found")
        content, content_type = await asyncio.to_thread(render_output, job)
        headers = self.account.headers(time.time())
        return Response(content, 200, headers=headers, media_type=content_type)


def router(control: SandboxControl, timing: SandboxTiming, prefix: str = "") -> APIRouter:
    """The PixelAPI routes, mounted by the sandbox app under ``/_sandbox/pixelapi``."""
    emulator = _Emulator(control, timing)
    routes = APIRouter(prefix=prefix, include_in_schema=False)

    def add_submit(operation: Operation) -> None:
        async def endpoint(request: Request) -> Response:
            return await emulator.submit(request, operation)

        path, name = SUBMIT_PATHS[operation], f"pixelapi_{operation}"
        routes.add_api_route(path, endpoint, methods=["POST"], name=name, response_model=None)

    for operation in SUBMIT_PATHS:
        add_submit(operation)
    for path, handler, name in (
        ("/v1/image/{generation_id}", emulator.job_status, "pixelapi_status"),
        ("/v1/video/{generation_id}", emulator.video_status, "pixelapi_video_status"),
        ("/v1/virtual-tryon/jobs/{job_id}", emulator.try_on_status, "pixelapi_try_on_status"),
        ("/v1/models", emulator.models, "pixelapi_models"),
        ("/v1/account/balance", emulator.balance, "pixelapi_balance"),
        ("/v1/account/usage", emulator.usage, "pixelapi_usage"),
        ("/outputs/{directory}/{year}/{month}/{day}/{name}", emulator.output, OUTPUT_ROUTE),
    ):
        routes.add_api_route(path, handler, methods=["GET"], name=name, response_model=None)
    return routes
