"""Everypixel Labs emulator: the analyses and media tasks of ``providers/everypixel.txt``.

Routes after ``/_sandbox/everypixel`` (the provider's own paths), all behind HTTP Basic
``client_id:client_secret`` (any of the four sandbox key pairs, one account):

- ``GET|POST /v1/keywords``, ``/v1/video_keywords``, ``/v1/image_captioning``, ``/v1/faces``,
  ``/v1/quality``, ``/v1/quality_ugc``: synchronous analyses of a ``url`` (GET) or an uploaded
  ``data`` file (POST) — see ``everypixel_analysis``;
- ``GET|POST /v1/tts/create``, ``/v1/lipsync/create``, ``/v1/imageswap/create``,
  ``/v1/videoswap/create``: ``201`` with ``task_id``, ``status``, ``queue``, ``result`` (and
  ``eta``, or ``progress`` for lipsync) — see ``everypixel_tasks``;
- ``GET|POST /v1/status`` with ``task_id`` (also at ``/v1/<model>/status``, as one example of
  the document polls), ``GET /v1/tts/voices`` (free);
- ``GET /media/{task_id}/{file}``: the results, public (no credentials), for 24 hours.

How the document is read (``app/providers/everypixel.py`` keeps the same readings):

- **Order of checks:** key pair (401) → rate limit (502) → fault → parameters (400/413) → work.
  Errors answer ``{"status": "error", "message": …}``; a 401 also sends
  ``WWW-Authenticate: Basic``.
- **Rate limits** are counted per key pair and per endpoint over a sliding second: more than
  30 requests in any one-second window on one endpoint (10 on ``/v1/faces``, 1 on
  ``/v1/image_captioning`` and ``/v1/video_keywords``, whose sections say "1 request per
  second") answers 502 Bad Gateway ("too many simultaneous requests"). Only admitted requests
  fill the window; each refusal is counted in ``stats.over_limit``. A status poll counts
  against its task's endpoint (``/v1/tts/create``…), so a client budgeting polls with their
  task never meets a 502 it did not cause.
- **A request is dated when it came in**: when the HTTP server read its first bytes
  (``timing.arrived_at``, recorded by ``app.serving``), not when its handler runs. The rule
  is about the client's sending rate, and Everypixel's edge sees that rate whatever its
  backends are busy with. The emulator shares its machine (in the tests, its process and event
  loop) with the gateway it judges: its handlers start after every callback the loop had
  queued before them, so on a busy or CPU-starved machine requests sent 40 ms apart reach
  their handlers in bunches, and dating them there would count the machine's stalls as the
  client's bursts (a gateway pacing at 24 requests a second met a 502 of this 30-a-second
  rule). Reading the socket happens in the first pass of the loop after the bytes arrive, so
  the date is at most one pass late and keeps the order of sending. Requests may reach their
  handlers out of that order, so a request is admitted only if every one-second window that
  holds its date (those ending at its date or at a later admitted one) keeps within the limit.
  Without a server stamp (the emulators called in-process, in unit tests) the date is
  ``_now()``.
- **Tasks** run one at a time per account and kind; the four key pairs share the queues.
  When created with ``callback``, the emulator POSTs ``{"task_id", "status", "file_url"
  (SUCCESS), "video_duration" (whole seconds, videos)}`` there once the task ends (best effort,
  once, errors ignored).
- **Billing:** every 200 analysis and every 201 task is a submission (errors are not billed).
- **Faults** (``POST /_sandbox/faults``), served after the key and rate checks on every API
  request (not on result downloads): ``http_500`` → 500; ``timeout`` → no answer for an hour;
  ``rate_limit`` → the documented 502; ``garbage`` → 200 with an HTML page; ``no_credits`` →
  the documented 429 on billable requests (analyses, task creation; free status and voices
  requests answer normally); ``no_face`` → an empty ``faces`` list on ``/v1/faces`` (the
  document's no-face answer) and a task ending ``FAILURE`` "No face detected…" for swaps and
  lipsync; ``blocked`` → a task ending ``FAILURE`` (content moderation; the document describes
  no moderation for analyses, which answer normally). On a status poll, ``no_face`` /
  ``blocked`` end the polled task so at once.
- ``timing.latency_s`` delays every analysis answer; ``timing.job_s`` is a task's duration.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right, insort
from collections import defaultdict
from dataclasses import replace
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.sandbox import fetch
from app.sandbox.control import DroppedConnection, Fault, FaultTarget, SandboxControl
from app.sandbox.everypixel_analysis import ANALYSES
from app.sandbox.everypixel_tasks import MODELS, READERS, Model, Task, Tasks, fault_failure
from app.sandbox.everypixel_wire import Refusal, client_id, read_form
from app.sandbox.everypixel_words import VOICES
from app.sandbox.timing import SandboxTiming, arrived_at

PROVIDER = "everypixel"
ACCOUNT = "sandbox"
"""The one account the four sandbox key pairs belong to."""
DEFAULT_RATE: Final = 30
RATES: Final[dict[str, int]] = {"faces": 10, "image_captioning": 1, "video_keywords": 1}
"""Requests per second per key pair, by endpoint (group), where not ``DEFAULT_RATE``."""
WINDOW_S: Final = 1.0
KEPT_S: Final = 2 * WINDOW_S
"""How far behind the latest admitted date a key pair's window keeps dates: a request dated
more than a window before it can no longer share a window with a new one."""
CALLBACK_TIMEOUT_S: Final = 10.0
FILE_ROUTE = "everypixel_file"

GARBAGE = "<html><head><title>Everypixel</title></head><body>Please wait…</body></html>"
NO_CREDITS = (
    "You have exceeded the number of available requests for this model. "
    "Top up your balance to continue."
)


def _now() -> float:
    """The clock of rate windows and task lifecycles (tests may replace it)."""
    return time.monotonic()


class _Stop(Exception):
    """Answer ``response`` instead of going on."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"status": "error", "message": message}, status, headers=headers)


def _too_many(group: str) -> Response:
    limit = RATES.get(group, DEFAULT_RATE)
    message = f"Too many simultaneous requests: at most {limit} requests per second."
    return _error(502, message)


class _Emulator:
    """One Everypixel account: its key pairs' rate windows and its tasks."""

    def __init__(self, control: SandboxControl, timing: SandboxTiming) -> None:
        self.control, self.timing = control, timing
        self.windows: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
        """Key pair and endpoint group → the dates of its admitted requests, in order."""
        self.tasks = Tasks()
        self.background: set[asyncio.Task[None]] = set()

    # checks -----------------------------------------------------------------------------------

    def _sign_in(self, request: Request, endpoint: str) -> str:
        self.control.count_request(PROVIDER, endpoint)
        client = client_id(request.headers.get("authorization"))
        if client is None:
            headers = {"WWW-Authenticate": 'Basic realm="api"'}
            raise _Stop(_error(401, "Invalid client credentials.", headers))
        return client

    def _admit(self, request: Request, client: str, group: str) -> None:
        """Refuse with 502 when the request would make more than ``limit`` of the key pair's
        requests in some one-second window (a request is dated when it came in)."""
        at = arrived_at(request.scope)
        if at is None:
            at = _now()
        dates = self.windows[(client, group)]
        del dates[: bisect_right(dates, max(at, dates[-1] if dates else at) - KEPT_S)]
        limit = RATES.get(group, DEFAULT_RATE)
        # the windows holding `at` that may be full: those ending at it and at later dates
        ends = [at, *(t for t in dates[bisect_right(dates, at) :] if t < at + WINDOW_S)]
        for end in ends:
            if bisect_right(dates, end) - bisect_right(dates, end - WINDOW_S) >= limit:
                self.control.stats[PROVIDER].over_limit += 1
                raise _Stop(_too_many(group))
        insort(dates, at)

    async def _fault(
        self, group: str, *, billable: bool, kind: FaultTarget, path: str
    ) -> Fault | None:
        """Take the armed fault; raise its answer when it replaces the real one."""
        fault = self.control.take_fault(PROVIDER, kind, path)
        if fault is Fault.timeout:
            await asyncio.sleep(3600)
        if fault in (Fault.http_500, Fault.timeout):
            raise _Stop(_error(500, "Internal server error."))
        if fault in (Fault.rate_limit, Fault.http_502):  # its 502 is "too many requests"
            raise _Stop(_too_many(group))
        if fault is Fault.reset:
            raise _Stop(DroppedConnection())
        if fault is Fault.http_429:
            raise _Stop(_error(429, "Too Many Requests"))
        if fault is Fault.garbage:
            raise _Stop(Response(GARBAGE, 200, media_type="text/html"))
        if fault is Fault.no_credits and billable:
            raise _Stop(_error(429, NO_CREDITS))
        return fault

    # endpoints --------------------------------------------------------------------------------

    async def analyse(self, request: Request, name: str) -> Response:
        try:
            client = self._sign_in(request, f"/v1/{name}")
            self._admit(request, client, name)
            fault = await self._fault(
                name, billable=True, kind=FaultTarget.submit, path=request.url.path
            )
            body = await ANALYSES[name](await read_form(request))
        except _Stop as stop:
            return stop.response
        except Refusal as refusal:
            return _error(refusal.status, refusal.message)
        if fault is Fault.no_face and "faces" in body:
            body["faces"] = []
        if self.timing.latency_s > 0:
            await asyncio.sleep(self.timing.latency_s)
        self.control.count_submission(PROVIDER)
        return JSONResponse(body)

    async def create(self, request: Request, model: Model) -> Response:
        try:
            client = self._sign_in(request, f"/v1/{model}/create")
            self._admit(request, client, model)
            fault = await self._fault(
                model, billable=True, kind=FaultTarget.submit, path=request.url.path
            )
            form = await read_form(request)
            callback = form.url("callback")
            work = await READERS[model](form)
        except _Stop as stop:
            return stop.response
        except Refusal as refusal:
            return _error(refusal.status, refusal.message)
        failure = fault_failure(fault, model)
        if failure is not None and work.failure is None:
            work = replace(work, failure=failure)
        now = _now()
        task = self.tasks.create(
            model,
            ACCOUNT,
            work,
            now=now,
            job_s=self.timing.job_s,
            title=form.text("title"),
            callback=callback,
        )
        url = request.url_for(FILE_ROUTE, task_id=task.id, file_name=task.file_name)
        task.file_url = str(url)
        self.control.count_submission(PROVIDER)
        if callback is not None:
            self._notify_later(task)
        body: dict[str, Any] = {
            "task_id": task.id,
            "status": self.tasks.status(task, now),
            "queue": self.tasks.queue(task, now),
            "result": "",
        }
        if model == "lipsync":
            body["progress"] = 0.0
        else:
            body["eta"] = round(task.ends_s - now, 3)
        return JSONResponse(body, 201)

    async def status(self, request: Request) -> Response:
        try:
            client = self._sign_in(request, "/v1/status")
            form = await read_form(request)
            task_id = form.text("task_id")
            task = self.tasks.get(task_id) if task_id else None
            self._admit(request, client, task.model if task else "status")
            fault = await self._fault(
                task.model if task else "status",
                billable=False,
                kind=FaultTarget.poll,
                path=request.url.path,
            )
        except _Stop as stop:
            return stop.response
        except Refusal as refusal:
            return _error(refusal.status, refusal.message)
        if task_id is None:
            return _error(400, "Task_id is missing.")
        if task is None:
            return _error(404, "Task not found.")
        if fault is Fault.unknown_status:  # a Celery state the document does not list
            return JSONResponse({"task_id": task.id, "status": "RETRY", "queue": 0, "result": ""})
        now = _now()
        failure = fault_failure(fault, task.model)
        if failure is not None:
            self.tasks.fail_now(task, failure, now)
        status = self.tasks.status(task, now)
        body: dict[str, Any] = {
            "task_id": task.id,
            "status": status,
            "queue": self.tasks.queue(task, now),
            "result": task.file_url if status == "SUCCESS" else "",
        }
        if status == "FAILURE":
            body["message"] = task.message
        return JSONResponse(body)

    async def voices(self, request: Request) -> Response:
        try:
            client = self._sign_in(request, "/v1/tts/voices")
            self._admit(request, client, "tts/voices")
            await self._fault(
                "tts/voices", billable=False, kind=FaultTarget.any, path=request.url.path
            )
        except _Stop as stop:
            return stop.response
        return JSONResponse(list(VOICES))

    async def file(self, task_id: str, file_name: str) -> Response:
        self.control.count_request(PROVIDER, "/media")
        task = self.tasks.get(task_id)
        if task is None or task.file_name != file_name:
            return _error(404, "File not found.")
        if self.tasks.status(task, _now()) != "SUCCESS":
            return _error(404, "File not found.")
        output = task.work.output
        content = await asyncio.to_thread(output.render)
        return Response(content, 200, media_type=output.content_type)

    # callbacks --------------------------------------------------------------------------------

    def _notify_later(self, task: Task) -> None:
        job = asyncio.get_running_loop().create_task(self._notify(task))
        self.background.add(job)
        job.add_done_callback(self.background.discard)

    async def _notify(self, task: Task) -> None:
        """POST the documented callback body once the task has ended (best effort)."""
        while (wait := task.ends_s - _now()) > 0:
            if self.tasks.get(task.id) is None:
                return
            await asyncio.sleep(wait)
        status = self.tasks.status(task, _now())
        body: dict[str, Any] = {"task_id": task.id, "status": status}
        if status == "SUCCESS":
            body["file_url"] = task.file_url
            if task.work.output.kind == "video":
                body["video_duration"] = max(1, round(task.work.output.duration_s))
        assert task.callback is not None
        try:
            async with fetch.client(CALLBACK_TIMEOUT_S) as client:
                await client.post(task.callback, json=body)
        except Exception:  # best effort: the document promises no retry
            return
        task.notified = True


def router(control: SandboxControl, timing: SandboxTiming, prefix: str = "") -> APIRouter:
    """The Everypixel routes, mounted by the sandbox app under ``/_sandbox/everypixel``."""
    emulator = _Emulator(control, timing)
    routes = APIRouter(prefix=prefix, include_in_schema=False)
    both = ["GET", "POST"]

    def add_analysis(name: str) -> None:
        async def endpoint(request: Request) -> Response:
            return await emulator.analyse(request, name)

        routes.add_api_route(
            f"/v1/{name}", endpoint, methods=both, name=f"everypixel_{name}", response_model=None
        )

    def add_task(model: Model) -> None:
        async def endpoint(request: Request) -> Response:
            return await emulator.create(request, model)

        routes.add_api_route(
            f"/v1/{model}/create", endpoint, methods=both, name=f"everypixel_{model}",
            response_model=None,
        )  # fmt: skip
        routes.add_api_route(
            f"/v1/{model}/status", emulator.status, methods=both,
            name=f"everypixel_{model}_status", response_model=None,
        )  # fmt: skip

    for name in ANALYSES:
        add_analysis(name)
    for model in MODELS:
        add_task(model)
    routes.add_api_route(
        "/v1/status", emulator.status, methods=both, name="everypixel_status", response_model=None
    )
    routes.add_api_route(
        "/v1/tts/voices", emulator.voices, methods=["GET"], name="everypixel_voices",
        response_model=None,
    )  # fmt: skip
    routes.add_api_route(
        "/media/{task_id}/{file_name}", emulator.file, methods=["GET"], name=FILE_ROUTE,
        response_model=None,
    )  # fmt: skip
    return routes
