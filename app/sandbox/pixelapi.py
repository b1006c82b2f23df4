"""PixelAPI emulator: the image endpoints of ``providers/pixelapi.txt``, kept in memory.

Routes after ``/_sandbox/pixelapi`` (the provider's own paths): ``POST /v1/image/generate``
(JSON), ``POST /v1/image/remove-background`` and ``/v1/image/upscale`` (multipart ``image`` or
JSON ``image_url``, not both, 10 MB), ``GET /v1/image/{generation_id}`` (``queued`` for the
first fifth of ``timing.job_s``, ``processing``, then ``completed``, ``failed`` or
``blocked``), ``GET /v1/models``, ``GET /v1/account/balance``, and the results at
``GET /outputs/images/{yyyy}/{mm}/{dd}/{name}.png``: real PNGs, public (no key), kept 24 h.

This module holds the account (credits, rate limit), the answers, and the routes; the
User-Agent and key checks and the request shapes are in ``pixelapi_wire`` (with their readings:
User-Agent, sizes, ``image_url``), the job model, lifecycle and outputs in ``pixelapi_jobs``.

How the document is read (``app/providers/pixelapi.py`` keeps the same readings):

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
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from app.sandbox.control import Fault, SandboxControl
from app.sandbox.credentials import PIXELAPI_API_KEY
from app.sandbox.pixelapi_jobs import CREDITS, Job, Jobs, Operation, end_now, render_output, stage
from app.sandbox.pixelapi_wire import FETCH_USER_AGENT as FETCH_USER_AGENT  # re-exported
from app.sandbox.pixelapi_wire import PARSERS, Reject, bearer, proper_user_agent

if TYPE_CHECKING:
    from app.sandbox.app import SandboxTiming

PROVIDER = "pixelapi"
PLAN = "scale"
ACCOUNT_EMAIL = "sandbox@pixelapi.dev"
PLAN_CREDITS = 300_000.0
REQUESTS_PER_MINUTE = 200
PRICING_URL = "https://pixelapi.dev/app/#pricing"
OUTPUT_ROUTE = "pixelapi_output"

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


class _Emulator:
    """One PixelAPI account (the sandbox key) and its jobs."""

    def __init__(self, control: SandboxControl, timing: SandboxTiming) -> None:
        self.control, self.timing = control, timing
        self.account = _Account()
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

    def _status(self, job: Job, now: float) -> str:
        """Where the job is at ``now``; a failed or blocked job is refunded once."""
        status = stage(job, now)
        if status in ("failed", "blocked") and not job.refunded:
            job.refunded = True
            self.account.credits += job.credits
        return status

    def _status_body(self, request: Request, job: Job, status: str) -> dict[str, object]:
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
        except Reject as rejected:
            return self._error(rejected.status, rejected.detail)
        if self.account.credits < cost:
            return self._insufficient(cost, self.account.credits)
        job = self.jobs.start(operation, work, fault, _now(), self.timing.job_s)
        self.account.credits -= job.credits
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
        end_now(job, fault, now)
        return self._json(self._status_body(request, job, self._status(job, now)))

    async def models(self, request: Request) -> Response:
        return self._gate(request, "/v1/models") or self._json({"models": MODELS})

    async def balance(self, request: Request) -> Response:
        if (denied := self._gate(request, "/v1/account/balance")) is not None:
            return denied
        now = _now()
        for job in self.jobs:
            self._status(job, now)
        credits = max(0.0, self.account.credits)
        return self._json({"credits_remaining": credits, "plan": PLAN, "email": ACCOUNT_EMAIL})

    async def output(
        self, request: Request, year: str, month: str, day: str, name: str
    ) -> Response:
        if (denied := self._gate(request, "/outputs", key=False)) is not None:
            return denied
        job = self.jobs.by_output(f"{year}/{month}/{day}/{name}")
        if job is None or self._status(job, _now()) != "completed":
            return self._error(404, "Not Found")
        png = await asyncio.to_thread(render_output, job)
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
