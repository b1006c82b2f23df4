"""ImagePipeline emulator: the Identity endpoints of ``providers/imagepipeline.txt``, in memory.

Routes after ``/_sandbox/imagepipeline`` (the provider's own paths): ``POST`` to
``/identity/faceswap/image/v1``, ``/identity/lock/image/v1``, ``/identity/replace/image/v1``,
``/creator/instamodel/image/v1``, ``/creator/tryon/image/v1`` and ``/identity/voice/clone/v1``
(flat JSON, inputs as public URLs the emulator downloads), each with its
``GET …/status/{job_id}``, and the results at ``GET /o/{name}`` (the CDN's pre-signed links:
no key; real WEBP/JPEG/PNG images, or a WAV for the voice clone).

This module holds the account (its USD balance), the answers and the routes; the request
bodies and input checks are in ``imagepipeline_wire``, the job model, lifecycle and results in
``imagepipeline_jobs``. How the document is read (``app/providers/imagepipeline.py`` keeps the
same readings):

- **Order of checks:** ``X-API-Key`` (missing: ``401 {"detail": "Not authenticated"}``; wrong:
  ``403 {"detail": "Invalid API key"}``) → fault → body and inputs (``400`` / ``422``) →
  admission. The document points to its Jobs and Errors pages: a submission answers the
  ``JobQueuedResponse`` (``job_id``, ``status: queued``, ``endpoint``,
  ``estimated_time_seconds``, ``queued_at``); polls answer ``job_id``, ``status``
  (``queued`` → ``pending`` → ``processing`` → ``completed`` | ``failed``), ``progress``,
  ``result_url`` and, always, ``balance_remaining_usd``; ``completed`` adds
  ``result_mime_type``, ``processing_time_seconds`` and timings, ``credits_charged``,
  ``credits_amount``; ``failed`` adds ``error``, ``failure_reason_code``, ``retryable``.
  A job polled under another endpoint's path, or unknown, is ``404 {"detail": "Job not found"}``.
- **Runtime problems surface on the job** ("validation problems are reported synchronously"):
  an account without the job's price, a rate limit, a faceless input or a content-policy
  refusal are accepted with a ``job_id`` and end ``failed`` with ``INSUFFICIENT_CREDITS``,
  ``RATE_LIMIT_EXCEEDED`` or ``INPUT_INVALID``. Only jobs that run count as submissions.
- **Balance.** The sandbox account starts at $200.00 (``START_BALANCE_USD``); a job is
  charged its price (``imagepipeline_jobs.PRICES``) when it completes; failed jobs are free.
  A completion the balance can no longer cover fails ``CREDIT_CHARGE_FAILED``.
- **Webhooks.** With ``callback_url``, the ``WebhookEvent`` (``job_id``, ``user_id``,
  ``status`` completed|failed, ``result_url``, ``result_mime_type``, ``result_size_bytes`` or
  the failure fields, ``balance_remaining_usd``, ``timestamp``) is POSTed once when the job
  ends; best effort, errors ignored. Inputs and webhooks go through ``http_client`` when a test
  sets one, else a fresh guarded client (``app.sandbox.fetch``: public addresses and the
  gateway's own URL only, no redirects).
- **Faults** apply to submissions and status polls (the results live on the CDN):
  ``http_500`` → 500, ``timeout`` → no answer for an hour, ``garbage`` → 200 with HTML. On a
  submission ``rate_limit`` / ``no_credits`` make the job fail ``RATE_LIMIT_EXCEEDED`` /
  ``INSUFFICIENT_CREDITS`` at once; ``blocked`` / ``no_face`` make it end ``failed``
  (``INPUT_INVALID``: "…rejected by content policy." / "No face detected…"). On a poll,
  ``rate_limit`` is a conventional ``429`` (``Retry-After``; the code in ``detail``) and
  ``blocked`` / ``no_face`` / ``no_credits`` end the running job (``CREDIT_CHARGE_FAILED``
  for the last).
- ``timing.job_s`` is each job's duration; ``timing.latency_s`` is unused (answers are
  immediate, the work asynchronous).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.sandbox import fetch
from app.sandbox.control import DroppedConnection, Fault, FaultTarget, SandboxControl
from app.sandbox.credentials import IMAGEPIPELINE_API_KEY
from app.sandbox.imagepipeline_jobs import (
    BLOCKED,
    BLOCKED_TEXT,
    CHARGE_FAILED,
    NO_CREDITS,
    NO_FACE,
    NO_SPEECH,
    PENDING_SHARE,
    PRICES,
    RATE_LIMITED,
    Failure,
    Job,
    Jobs,
    end_now,
    render,
    stage,
)
from app.sandbox.imagepipeline_wire import PARSERS, Refusal
from app.sandbox.timing import SandboxTiming

PROVIDER = "imagepipeline"
START_BALANCE_USD = 200.0
USER_ID = "usr_sandbox"
RESULT_ROUTE = "imagepipeline_result"
RETRY_AFTER_S = 1
WEBHOOK_TIMEOUT_S = 10.0

http_client: httpx.AsyncClient | None = None
"""The client inputs are fetched and webhooks posted with (tests set one); None: a fresh one."""


def _now() -> float:
    """The clock of job lifecycles (tests may replace it)."""
    return time.monotonic()


@asynccontextmanager
async def _client() -> AsyncIterator[httpx.AsyncClient]:
    if http_client is not None:
        yield http_client
        return
    async with fetch.client(WEBHOOK_TIMEOUT_S) as client:
        yield client


def _error(status: int, detail: object, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"detail": detail}, status, headers=headers)


class _Emulator:
    """One ImagePipeline account (the sandbox key) and its jobs."""

    def __init__(self, control: SandboxControl, timing: SandboxTiming) -> None:
        self.control, self.timing = control, timing
        self.balance = round(START_BALANCE_USD * 1000)
        """Thousandths of a USD (ImagePipeline credits)."""
        self.jobs = Jobs()
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def balance_usd(self) -> float:
        return round(self.balance / 1000, 3)

    def _gate(self, request: Request, endpoint: str) -> Response | None:
        self.control.count_request(PROVIDER, endpoint)
        key = request.headers.get("x-api-key")
        if not key:
            return _error(401, "Not authenticated")
        if key != IMAGEPIPELINE_API_KEY:
            return _error(403, "Invalid API key")
        return None

    async def _serve_fault(self, fault: Fault | None) -> Response | None:
        """The answer a transport-level fault puts in place of the real one."""
        if fault is Fault.timeout:
            await asyncio.sleep(3600)
        if fault in (Fault.http_500, Fault.timeout):
            return _error(500, "Internal Server Error")
        if fault is Fault.http_502:
            return _error(502, "Bad Gateway")
        if fault is Fault.http_429:
            return _error(429, "Too Many Requests")
        if fault is Fault.reset:
            return DroppedConnection()
        if fault is Fault.garbage:
            html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
            return Response(html, 200, media_type="text/html")
        return None

    # jobs -------------------------------------------------------------------------------------

    def _settle(self, job: Job, now: float) -> tuple[str, int]:
        """Where the job is; a job past its end is charged (completed) or let go, once."""
        status, progress = stage(job, now)
        if status in ("completed", "failed") and not job.settled:
            job.settled = True
            if status == "completed":
                if self.balance < job.price:
                    job.failure = CHARGE_FAILED
                else:
                    self.balance -= job.price
            status, progress = stage(job, now)
        return status, progress

    def _outcome(self, job: Job) -> dict[str, object]:
        """The fields a finished job adds to its status and webhook."""
        if job.failure is not None:
            return {
                "error": job.failure.error,
                "failure_reason_code": job.failure.code,
                "retryable": job.failure.retryable,
            }
        return {"result_url": job.result_url, "result_mime_type": job.content_type}

    def _status_body(self, job: Job, status: str, progress: int) -> dict[str, object]:
        body: dict[str, object] = {
            "job_id": job.id,
            "status": status,
            "progress": progress,
            "result_url": None,
        }
        if status in ("completed", "failed"):
            elapsed = round(max(job.ends_s - job.created_s, 0.0), 3)
            queued = round(elapsed * PENDING_SHARE, 3)
            body |= self._outcome(job)
            body |= {
                "processing_time_seconds": elapsed,
                "queue_wait_seconds": queued,
                "inference_time_seconds": round(elapsed - queued, 3),
                "total_elapsed_seconds": elapsed,
                "credits_charged": status == "completed",
                "credits_amount": job.price if status == "completed" else 0,
            }
        body["balance_remaining_usd"] = self.balance_usd
        return body

    async def _notify(self, job: Job) -> None:
        """POST the job's WebhookEvent once it ends (best effort)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.timing.job_s + 60
        while (remaining := job.ends_s - _now()) > 0 and loop.time() < give_up:
            await asyncio.sleep(min(remaining, 0.5))
        status, _ = self._settle(job, _now())
        if status not in ("completed", "failed") or job.notified or job.callback_url is None:
            return
        job.notified = True
        event: dict[str, object] = {"job_id": job.id, "user_id": USER_ID, "status": status}
        event |= self._outcome(job)
        if status == "completed":
            event["result_size_bytes"] = len(await asyncio.to_thread(render, job))
        event |= {"balance_remaining_usd": self.balance_usd, "timestamp": int(time.time())}
        try:
            async with _client() as client:
                await client.post(job.callback_url, json=event, timeout=WEBHOOK_TIMEOUT_S)
        except (httpx.HTTPError, OSError, ValueError):
            pass

    def _admission(self, endpoint: str, fault: Fault | None) -> Failure | None:
        """Why a valid submission fails at once, if it does."""
        if fault is Fault.rate_limit:
            return RATE_LIMITED
        if fault is Fault.no_credits or self.balance < PRICES[endpoint]:
            return NO_CREDITS
        return None

    # endpoints --------------------------------------------------------------------------------

    async def submit(self, request: Request, endpoint: str) -> Response:
        if (denied := self._gate(request, endpoint)) is not None:
            return denied
        fault = self.control.take_fault(PROVIDER, FaultTarget.submit, request.url.path)
        if (served := await self._serve_fault(fault)) is not None:
            return served
        try:
            async with _client() as client:
                work, callback_url = await PARSERS[endpoint](request, client)
        except Refusal as rejected:
            return _error(rejected.status, rejected.detail)
        now = _now()
        for job in self.jobs:
            self._settle(job, now)
        audio = work.kind == "audio"
        failure, duration = self._admission(endpoint, fault), 0.0
        if failure is None:
            duration = self.timing.job_s
            if fault is Fault.blocked:
                failure = BLOCKED_TEXT if audio else BLOCKED
            elif fault is Fault.no_face or work.faceless:
                failure = NO_SPEECH if audio else NO_FACE
            self.control.count_submission(PROVIDER)
        job = self.jobs.start(endpoint, work, now, duration, callback_url, failure)
        job.result_url = str(request.url_for(RESULT_ROUTE, name=job.result_name))
        if callback_url is not None:
            task = asyncio.create_task(self._notify(job))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return JSONResponse(
            {
                "job_id": job.id,
                "status": "queued",
                "endpoint": endpoint,
                "estimated_time_seconds": round(self.timing.job_s, 3),
                "queued_at": job.queued_at,
            }
        )

    async def job_status(self, request: Request, endpoint: str, job_id: str) -> Response:
        if (denied := self._gate(request, f"{endpoint}/status/{{job_id}}")) is not None:
            return denied
        fault = self.control.take_fault(PROVIDER, FaultTarget.poll, request.url.path)
        if (served := await self._serve_fault(fault)) is not None:
            return served
        if fault is Fault.rate_limit:
            detail = {
                "error": RATE_LIMITED.error,
                "failure_reason_code": RATE_LIMITED.code,
                "retryable": True,
            }
            return _error(429, detail, {"Retry-After": str(RETRY_AFTER_S)})
        job = self.jobs.get(job_id)
        if job is None or job.endpoint != endpoint:
            return _error(404, "Job not found")
        if fault is Fault.unknown_status:
            return JSONResponse({"job_id": job.id, "status": "scheduled"})
        now = _now()
        audio = job.work.kind == "audio"
        ending = {
            Fault.blocked: BLOCKED_TEXT if audio else BLOCKED,
            Fault.no_face: NO_SPEECH if audio else NO_FACE,
            Fault.no_credits: CHARGE_FAILED,
        }
        if fault in ending:
            end_now(job, ending[fault], now)
        return JSONResponse(self._status_body(job, *self._settle(job, now)))

    async def result(self, request: Request, name: str) -> Response:
        self.control.count_request(PROVIDER, "/o/{name}")
        job = self.jobs.by_result(name)
        if job is None or self._settle(job, _now())[0] != "completed":
            return _error(404, "Not Found")
        content = await asyncio.to_thread(render, job)
        return Response(content, 200, media_type=job.content_type)


def router(control: SandboxControl, timing: SandboxTiming, prefix: str = "") -> APIRouter:
    """The ImagePipeline routes, mounted by the sandbox app under ``/_sandbox/imagepipeline``."""
    emulator = _Emulator(control, timing)
    routes = APIRouter(prefix=prefix, include_in_schema=False)

    def add(endpoint: str) -> None:
        async def submit(request: Request) -> Response:
            return await emulator.submit(request, endpoint)

        async def job_status(request: Request, job_id: str) -> Response:
            return await emulator.job_status(request, endpoint, job_id)

        name = endpoint.strip("/").replace("/", "_")
        routes.add_api_route(
            endpoint, submit, methods=["POST"], name=f"imagepipeline_{name}", response_model=None
        )
        routes.add_api_route(
            f"{endpoint}/status/{{job_id}}",
            job_status,
            methods=["GET"],
            name=f"imagepipeline_{name}_status",
            response_model=None,
        )

    for endpoint in PARSERS:
        add(endpoint)
    routes.add_api_route(
        "/o/{name}", emulator.result, methods=["GET"], name=RESULT_ROUTE, response_model=None
    )
    return routes
