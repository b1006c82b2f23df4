"""Perfect Corp AI API emulator: sign-in, uploads, tasks and style listings, kept in memory.

Routes after ``/_sandbox/perfectcorp`` (the provider's paths as ``app/providers/perfectcorp.py``
reads them): ``POST /s2s/v1.0/client/auth``, ``POST /s2s/v1.0/file/{feature}``,
``PUT /upload/{file_id}`` (the upload URL the file call hands out), ``POST`` and
``GET /s2s/v1.0/task/{feature}``, ``GET /s2s/v1.0/task/style-group/{feature}``,
``GET /s2s/v1.0/task/style/{feature}``, the results at ``GET /results/{name}`` and style
thumbnails at ``GET /thumbs/{style_id}.jpg``. The engine (features, catalog, task lifecycle,
outputs) is in ``perfectcorp_tasks``.

How the document is read (the adapter keeps the same readings):

- **Sign-in.** ``id_token`` is decrypted with the sandbox private key (RSA PKCS#1 v1.5); it
  must read ``client_id=<the body's client_id>&timestamp=<ms>`` with a timestamp within
  ``ID_TOKEN_MAX_SKEW_S`` of now. Access tokens live ``TOKEN_TTL_S`` (2 h; tests shorten it).
- **Envelope.** Answers are ``{"status": 200, "result": {…}}``; refusals
  ``{"status", "error", "error_code"}``: 400 ``InvalidParameters`` (a body or query the
  document does not allow), 401 ``InvalidAccessToken`` (missing, unknown or expired token),
  401 ``InvalidClientId`` / ``InvalidIdToken`` (sign-in), 400 ``CreditInsufficiency``,
  400 ``InvalidTaskId`` (unknown or dropped task), 429 ``RateLimitExceeded``, 404 ``NotFound``
  (no such feature). Uploads and results answer like a storage bucket (XML errors).
- **Limits**, as the document writes them ("Both conditions must be met"): 100 requests per
  5 minutes per client address on every API call (sign-ins included; uploads go to storage and
  do not count), and 100 requests per minute per access token on every call that carries one.
  A refused request counts in neither window, and in ``stats.over_limit``. A sandbox running
  a bigger contract sets the per-token rate (``MEDIAGATE_SANDBOX_RATE_LIMITS``), the per-address
  one (``MEDIAGATE_SANDBOX_IP_LIMITS``) and the ``polling_interval`` its polls answer.
- **Liveness.** Tasks the client still has to poll count in ``stats.in_flight`` (its peak in
  ``peak_in_flight``); the longest time a running task went unpolled is
  ``longest_poll_gap_s``, and a task lost to the 10-s rule counts in ``stats.dropped``.
- **Chaining.** A result's ``dst_id`` names it as a file for the account's later tasks (in
  ``src_ids``, ``ref_ids`` or ``mask_ids``) for 30 days, judged like an upload; a file call
  and an upload count in ``by_endpoint`` (``PUT /upload``), a task on a ``dst_id`` in neither.
- **request_id.** The same ``request_id`` with the same file ids answers the task already
  made: no new task, no new charge. Only new tasks count in ``stats.submissions``.
  Credits (``PLAN_CREDITS``, one per task) are taken when a poll first reports ``success``.
- **Faults** are served on task submissions, status polls and style listings: ``http_500``
  → 500, ``timeout`` → no answer for an hour, ``rate_limit`` → the 429, ``garbage`` → 200 with
  HTML, ``no_credits`` → ``CreditInsufficiency``. ``no_face`` / ``blocked`` make a submitted
  task end ``error_no_face`` / ``error_nsfw_content_detected`` (on a poll they end the polled
  running task so). Sign-in, file calls, uploads and downloads take no faults.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from app.sandbox import images
from app.sandbox import perfectcorp_tasks as engine
from app.sandbox.control import DroppedConnection, Fault, FaultTarget, SandboxControl
from app.sandbox.credentials import PERFECTCORP_CLIENT_ID, PERFECTCORP_PRIVATE_KEY_PEM
from app.sandbox.perfectcorp_tasks import FEATURES, Output, StoredFile, Task
from app.sandbox.perfectcorp_wire import FilesBody, Refusal, Window, invalid, page, read_task
from app.sandbox.timing import SandboxTiming

PROVIDER = "perfectcorp"
API = "/s2s/v1.0"
TOKEN_TTL_S = 2 * 3600.0
ID_TOKEN_MAX_SKEW_S = 300.0
REQUESTS_PER_MINUTE = 100
REQUESTS_PER_IP = 100
IP_WINDOW_S = 300.0
"""The document: "Each IP address is allowed a maximum of 100 requests per 5 minutes"."""
PLAN_CREDITS = 1000.0
CREDITS_PER_TASK = 1.0
RESULT_ROUTE, UPLOAD_ROUTE, THUMB_ROUTE = "pc_result", "pc_upload", "pc_thumb"


def _now() -> float:
    """The emulator's clock for tokens, task lifecycles and drops (tests may replace it)."""
    return time.monotonic()


@cache
def _private_key() -> RSAPrivateKey:
    """Loaded once per process (checking an RSA key takes a noticeable moment)."""
    key = load_pem_private_key(PERFECTCORP_PRIVATE_KEY_PEM.encode(), password=None)
    assert isinstance(key, RSAPrivateKey)
    return key


class _Emulator:
    """One Perfect Corp account (the sandbox credential): tokens, files, tasks, credits."""

    def __init__(self, control: SandboxControl, timing: SandboxTiming) -> None:
        self.control, self.timing = control, timing
        self.private_key = _private_key()
        self.tokens: dict[str, float] = {}
        """Access token → when it expires."""
        self.windows: dict[str, Window] = {}
        self.files: dict[str, StoredFile] = {}
        self.tasks: dict[str, Task] = {}
        self.dedup: dict[tuple[int | None, tuple[str, ...]], str] = {}
        """(request_id, file ids) → the task they made."""
        self.results: dict[str, tuple[Output, float]] = {}
        """Result name → what it shows and when its URL expires."""
        self.result_files: dict[str, tuple[Output, float]] = {}
        """``dst_id`` → the result it names and when it was made (kept 30 days)."""
        self.credits = PLAN_CREDITS

    @property
    def _rate_limit(self) -> int:
        """Requests per minute per token: the document's, or the plan the sandbox runs."""
        return int(self.timing.requests_per_minute.get(PROVIDER) or REQUESTS_PER_MINUTE)

    @property
    def _ip_limit(self) -> int:
        """Requests per 5 minutes per address: the document's, or the contract the sandbox
        runs."""
        return int(self.timing.ip_requests_per_5_minutes.get(PROVIDER) or REQUESTS_PER_IP)

    def _admit(self, request: Request, token: str | None) -> bool:
        """Both conditions: the address's window and, when the call carries one, the token's.
        A refused request counts in neither."""
        now = _now()
        host = request.client.host if request.client else "unknown"
        windows = [(self.windows.setdefault(f"ip:{host}", Window()), self._ip_limit, IP_WINDOW_S)]
        if token is not None:
            window = self.windows.setdefault(f"token:{token}", Window())
            windows.append((window, self._rate_limit, 60.0))
        if not all(window.room(now, limit, span) for window, limit, span in windows):
            self.control.stats[PROVIDER].over_limit += 1
            return False
        for window, limit, span in windows:
            window.admit(now, limit, span)
        return True

    # answers ------------------------------------------------------------------------------------

    @staticmethod
    def _ok(result: dict[str, Any]) -> Response:
        return JSONResponse({"status": 200, "result": result})

    @staticmethod
    def _refuse(refusal: Refusal) -> Response:
        body = {"status": refusal.status, "error": refusal.error, "error_code": refusal.code}
        return JSONResponse(body, refusal.status)

    @staticmethod
    def _bucket_error(status: int, code: str, message: str) -> Response:
        xml = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        return Response(xml, status, media_type="application/xml")

    def _gate(self, request: Request, endpoint: str, feature: str | None = None) -> None:
        """Count the request; refuse an unknown feature, a bad token, or one over its limit."""
        self.control.count_request(PROVIDER, endpoint)
        if feature is not None and feature not in FEATURES:
            raise Refusal(404, "Not Found", "NotFound")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expires = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None:
            raise Refusal(401, "Invalid access token", "InvalidAccessToken")
        now = _now()
        if now >= expires:
            raise Refusal(401, "Access token expired", "InvalidAccessToken")
        if not self._admit(request, token.strip()):
            raise Refusal(429, "Too Many Requests", "RateLimitExceeded")

    async def _serve_fault(self, fault: Fault | None) -> Response | None:
        if fault is Fault.timeout:
            await asyncio.sleep(3600)
        if fault in (Fault.http_500, Fault.timeout):
            return self._refuse(Refusal(500, "Internal Server Error", "InternalServerError"))
        if fault is Fault.http_429:
            return self._refuse(Refusal(429, "Too Many Requests", "RateLimitExceeded"))
        if fault is Fault.http_502:
            return self._refuse(Refusal(502, "Bad Gateway", "BadGateway"))
        if fault is Fault.reset:
            return DroppedConnection()
        if fault is Fault.rate_limit:
            return self._refuse(Refusal(429, "Too Many Requests", "RateLimitExceeded"))
        if fault is Fault.no_credits:
            return self._refuse(Refusal(400, "Insufficient credits", "CreditInsufficiency"))
        if fault is Fault.garbage:
            html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
            return Response(html, 200, media_type="text/html")
        return None

    # sign-in ------------------------------------------------------------------------------------

    async def auth(self, request: Request) -> Response:
        self.control.count_request(PROVIDER, f"POST {API}/client/auth")
        if not self._admit(request, None):
            return self._refuse(Refusal(429, "Too Many Requests", "RateLimitExceeded"))
        try:
            body = await request.json()
            client_id, id_token = body["client_id"], body["id_token"]
            if not isinstance(client_id, str) or not isinstance(id_token, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return self._refuse(invalid("client_id and id_token are required"))
        if client_id != PERFECTCORP_CLIENT_ID:
            return self._refuse(Refusal(401, "Unknown client_id", "InvalidClientId"))
        if not self._id_token_valid(client_id, id_token):
            return self._refuse(Refusal(401, "Invalid id_token", "InvalidIdToken"))
        token = secrets.token_urlsafe(32)
        self.tokens[token] = _now() + TOKEN_TTL_S
        return self._ok({"access_token": token})

    def _id_token_valid(self, client_id: str, id_token: str) -> bool:
        try:
            plain = self.private_key.decrypt(base64.b64decode(id_token), padding.PKCS1v15())
            fields = dict(part.split("=", 1) for part in plain.decode().split("&"))
            timestamp_ms = int(fields["timestamp"])
        except (ValueError, binascii.Error, KeyError, UnicodeDecodeError):
            return False
        fresh = abs(time.time() - timestamp_ms / 1000) <= ID_TOKEN_MAX_SKEW_S
        return fields.get("client_id") == client_id and fresh

    # files --------------------------------------------------------------------------------------

    async def create_files(self, request: Request, feature: str) -> Response:
        try:
            self._gate(request, f"POST {API}/file/{feature}", feature)
            try:
                body = FilesBody.model_validate(await request.json())
            except (ValueError, ValidationError) as exc:
                raise invalid("files must list content_type and file_name") from exc
            spec = FEATURES[feature]
            answered = []
            for entry in body.files:
                if entry.content_type not in spec.upload_types:
                    raise invalid(f"content_type {entry.content_type} is not supported")
                stored = engine.new_file(entry.content_type, entry.file_name, _now())
                self.files[stored.id] = stored
                url = request.url_for(UPLOAD_ROUTE, file_id=stored.id)
                headers = {
                    "Content-Type": stored.content_type,
                    "X-Upload-Token": stored.upload_token,
                }
                answered.append(
                    {
                        "content_type": stored.content_type,
                        "file_name": stored.file_name,
                        "file_id": stored.id,
                        "requests": [{"headers": headers, "url": str(url), "method": "PUT"}],
                    }
                )
        except Refusal as refusal:
            return self._refuse(refusal)
        return self._ok({"files": answered})

    async def upload(self, request: Request, file_id: str) -> Response:
        self.control.count_request(PROVIDER, "PUT /upload")
        stored = self.files.get(file_id)
        if (
            stored is None
            or not stored.upload_token  # a result (dst_id) is no upload
            or _now() > stored.created_s + engine.FILE_TTL_S
        ):
            return self._bucket_error(404, "NoSuchUpload", "The upload URL is unknown or expired")
        given = (request.headers.get("content-type"), request.headers.get("x-upload-token"))
        if given != (stored.content_type, stored.upload_token):
            message = "The headers do not match the ones the upload URL was signed with"
            return self._bucket_error(403, "SignatureDoesNotMatch", message)
        stored.data = await request.body()
        return Response(status_code=200)

    # tasks --------------------------------------------------------------------------------------

    async def run_task(self, request: Request, feature: str) -> Response:
        try:
            self._gate(request, f"POST {API}/task/{feature}", feature)
            fault = self.control.take_fault(PROVIDER, FaultTarget.submit, request.url.path)
            if (served := await self._serve_fault(fault)) is not None:
                return served
            try:
                raw = await request.json()
            except ValueError as exc:
                raise invalid("the body is not JSON") from exc
            request_id, work = read_task(raw, feature, self._find_file)
            key = (request_id, tuple(f.id for fs in work.files.values() for f in fs))
            if request_id is not None and (known := self.dedup.get(key)) is not None:
                return self._ok({"task_id": known})
            if self.credits < CREDITS_PER_TASK:
                raise Refusal(400, "Insufficient credits", "CreditInsufficiency")
        except Refusal as refusal:
            return self._refuse(refusal)
        task = engine.start(work, fault, _now(), self.timing.job_s)
        self.tasks[task.id] = task
        if request_id is not None:
            self.dedup[key] = task.id
        self.control.count_submission(PROVIDER)
        self.control.task_started(PROVIDER)
        return self._ok({"task_id": task.id})

    async def task_status(self, request: Request, feature: str) -> Response:
        try:
            self._gate(request, f"GET {API}/task/{feature}", feature)
            fault = self.control.take_fault(PROVIDER, FaultTarget.poll, request.url.path)
            if (served := await self._serve_fault(fault)) is not None:
                return served
            task_id = request.query_params.get("task_id")
            if not task_id:
                raise invalid("task_id is required")
            now = _now()
            task = self.tasks.get(task_id)
            if task is not None and now - task.last_seen_s > engine.DROP_AFTER_S:
                del self.tasks[task_id]
                if not task.reported:
                    self.control.task_ended(PROVIDER, dropped=True)
                task = None
            if task is None or task.feature != feature:
                raise Refusal(400, "Invalid task id", "InvalidTaskId")
        except Refusal as refusal:
            return self._refuse(refusal)
        if not task.reported:
            self.control.task_polled(PROVIDER, now - task.last_seen_s)
        task.last_seen_s = now
        if fault is Fault.unknown_status:
            interval = self.timing.polling_interval_ms or engine.POLLING_INTERVAL_MS
            return self._ok({"polling_interval": interval, "status": "queued"})
        engine.end_now(task, fault, now)
        status = engine.stage(task, now)
        if status != "running" and not task.reported:
            task.reported = True
            self.control.task_ended(PROVIDER)
        return self._ok(self._status_body(request, task, status, now))

    def _find_file(self, file_id: str) -> StoredFile | None:
        """An uploaded file, or a result by its ``dst_id`` ("used for integrating other
        task. No need to reupload file"), while the account keeps it."""
        stored = self.files.get(file_id)
        if file_id not in self.result_files:
            return stored
        output, made = self.result_files[file_id]
        if _now() > made + engine.RESULT_FILE_TTL_S:
            return None
        if stored is None:
            stored = self.files[file_id] = engine.result_file(file_id, output, made)
        return stored

    def _status_body(self, request: Request, task: Task, status: str, now: float) -> dict[str, Any]:
        interval = self.timing.polling_interval_ms or engine.POLLING_INTERVAL_MS
        body: dict[str, Any] = {"polling_interval": interval, "status": status}
        if status == "error":
            body["error"] = task.outcome
        if status != "success":
            return body
        if not task.charged:
            task.charged = True
            self.credits -= CREDITS_PER_TASK
            for output in task.outputs:
                name = engine.new_result_id(output.ext)
                task.result_ids.append(name)
                self.results[name] = (output, now + engine.RESULT_TTL_S)
                self.result_files[engine.dst_id(name)] = (output, now)
        data = []
        for name, output in zip(task.result_ids, task.outputs, strict=True):
            item: dict[str, Any] = {
                "dst_id": engine.dst_id(name),
                "url": str(request.url_for(RESULT_ROUTE, name=name)),
            }
            if output.res_age is not None:
                item["res_age"] = output.res_age
            data.append(item)
        result: dict[str, Any] = {"id": 0, "data": data}
        if task.custom_info is not None:
            result["custom_info"] = task.custom_info
        body["results"] = [result]
        return body

    async def result(self, request: Request, name: str) -> Response:
        self.control.count_request(PROVIDER, "GET /results")
        found = self.results.get(name)
        if found is None:
            return self._bucket_error(404, "NoSuchKey", "The specified key does not exist.")
        output, expires = found
        if _now() > expires:
            return self._bucket_error(403, "AccessDenied", "Request has expired")
        content = await asyncio.to_thread(output.render)
        return Response(content, 200, media_type=output.content_type)

    # styles -------------------------------------------------------------------------------------

    async def style_groups(self, request: Request, feature: str) -> Response:
        try:
            self._gate(request, f"GET {API}/task/style-group/{feature}", feature)
            if (served := await self._serve_fault(self.control.take_fault(PROVIDER))) is not None:
                return served
            groups = list(engine.CATALOG.get(feature, ()))
            if not FEATURES[feature].styled:
                raise Refusal(404, "Not Found", "NotFound")
            listed, next_token = page(request.query_params, groups)
        except Refusal as refusal:
            return self._refuse(refusal)
        items = [{"id": group.id, "info": {"title": group.title}} for group in listed]
        return self._ok({"next_token": next_token, "groups": items})

    async def styles(self, request: Request, feature: str) -> Response:
        try:
            self._gate(request, f"GET {API}/task/style/{feature}", feature)
            if (served := await self._serve_fault(self.control.take_fault(PROVIDER))) is not None:
                return served
            if not FEATURES[feature].styled:
                raise Refusal(404, "Not Found", "NotFound")
            wanted = request.query_params.get("style_group_id", "")
            group = next((g for g in engine.CATALOG[feature] if str(g.id) == wanted), None)
            if group is None:
                raise invalid("style_group_id is missing or unknown")
            listed, next_token = page(request.query_params, list(group.styles))
        except Refusal as refusal:
            return self._refuse(refusal)
        items = [
            {
                "id": style.id,
                "info": {
                    "title": style.title,
                    "thumb": str(request.url_for(THUMB_ROUTE, style_id=str(style.id))),
                },
            }
            for style in listed
        ]
        return self._ok({"next_token": next_token, "styles": items})

    async def thumb(self, request: Request, style_id: str) -> Response:
        self.control.count_request(PROVIDER, "GET /thumbs")
        seed = int(style_id) if style_id.isdigit() else 0
        content = await asyncio.to_thread(images.render, 64, 64, "jpeg", seed)
        return Response(content, 200, media_type="image/jpeg")


def router(control: SandboxControl, timing: SandboxTiming, prefix: str = "") -> APIRouter:
    """The Perfect Corp routes, mounted by the sandbox app under ``/_sandbox/perfectcorp``."""
    emulator = _Emulator(control, timing)
    routes = APIRouter(prefix=prefix, include_in_schema=False)
    for path, handler, method, name in (
        (f"{API}/client/auth", emulator.auth, "POST", "pc_auth"),
        (f"{API}/file/{{feature}}", emulator.create_files, "POST", "pc_file"),
        ("/upload/{file_id}", emulator.upload, "PUT", UPLOAD_ROUTE),
        (f"{API}/task/style-group/{{feature}}", emulator.style_groups, "GET", "pc_groups"),
        (f"{API}/task/style/{{feature}}", emulator.styles, "GET", "pc_styles"),
        (f"{API}/task/{{feature}}", emulator.run_task, "POST", "pc_run"),
        (f"{API}/task/{{feature}}", emulator.task_status, "GET", "pc_status"),
        ("/results/{name}", emulator.result, "GET", RESULT_ROUTE),
        ("/thumbs/{style_id}.jpg", emulator.thumb, "GET", THUMB_ROUTE),
    ):
        routes.add_api_route(path, handler, methods=[method], name=name, response_model=None)
    return routes
