"""Perfect Corp AI API (YouCam) adapter (``providers/perfectcorp.txt``): upload, task, poll.

Paths. The document names endpoints only as ``file/<feature>``, ``task/<feature>`` and the
authentication call; they are read as ``/s2s/v1.0/…`` under the API server (the prefix its
public integrations use): ``POST /s2s/v1.0/client/auth``, ``POST /s2s/v1.0/file/<feature>``,
``POST`` and ``GET /s2s/v1.0/task/<feature>``, ``GET /s2s/v1.0/task/style-group/<feature>``
and ``GET /s2s/v1.0/task/style/<feature>``. Features (only ``hair-style`` is named in the
document; the others are read the same way, all in one table, ``perfectcorp_wire.FEATURES``):

====================================  ===========================================================
image.hairstyle (``variant``)         ``hair-style``, ``wig``, ``hair-ext``, ``hair-bang``,
                                      ``hair-vol`` (``style_id`` required)
image.age                             ``aging`` (the series, without the uploaded photo)
image.transfer_makeup                 ``mu-trans-rec`` (``image`` → ``src_ids``, ``reference`` →
                                      ``ref_ids``)
image.remove_object                   ``obj-removal`` (``mask`` → ``mask_ids``; no prompts)
image.colorize / remove_background    ``colorize`` / ``sod`` (a PNG cut-out)
image.upscale                         ``enhance`` (``scale`` 1, 2 or 4; 2 when not given)
image.generate                        ``text-to-image`` (``prompt`` + ``style_id`` required)
====================================  ===========================================================

Flow of a call (``perfectcorp_auth`` signs in and shares tokens across processes):

1. ``POST file/<feature>`` with one ``{"content_type", "file_name"}`` per input (both inputs of
   makeup transfer and object removal in one call); each answer's ``requests[0]`` gives the
   upload ``url``, ``method`` and ``headers``, used as given; the bytes go there (no token).
   Inputs of a type the feature does not take (WEBP; PNG for ``hair-style``, "jpg" only) are
   re-encoded first. Object removal's mask ("the exact same width and hight with the input
   image") is fitted after the image, to the size the image is sent at
   (``_conform.conform_mask``).
2. Before the task runs, the attempt's record ``submission:<job>:<attempt>:<credential>`` is
   saved in the shared state (24 h, uploads are kept a day) with the file ids and a
   ``request_id`` drawn from a per-credential counter (``incr`` − 1: "starting from 0"). A
   worker resuming the same attempt reuses both, so the upstream answers the same task and
   charges once. A task that ended in ``error`` or was lost has its ``request_id`` cleared:
   the next attempt reruns it under a fresh id with the same files.
3. ``POST task/<feature>`` → ``task_id``; ``GET task/<feature>?task_id=`` is polled after
   ``polling_interval`` ms, never more than ``MAX_POLL_GAP_S`` (a task not polled for 10 s is
   dropped). ``success`` → every ``results[0].data[].url`` is downloaded (valid 2 h); its
   ``dst_id`` ("File ID of the result file is used for integrating other task. No need to
   reupload file") is kept with the artifact, with the account that holds it.
4. Chaining: an ``artifact_id`` input whose artifact this account made within 29 of the 30
   days results are kept, and which fits the next task as it is, goes as its ``dst_id`` in
   ``src_ids`` (or ``ref_ids``, ``mask_ids``) without a file call or upload; any other input
   (another account's, or one that must be fitted first) is uploaded.

Readings of what the document leaves open (the sandbox emulator keeps the same ones):

- **Bodies** are enveloped ``{"status": 200, "result": {…}}``; the document's samples are
  elided, so field names follow its schemas: ``result.files[].requests[]``,
  ``result.task_id``, ``result.{polling_interval, status, error, results[].data[]}``.
- **Errors.** The document's engine error table is ``ERRORS``, each row citing its line; an
  engine code not in it reads as the document's "Others" (``unknown_internal_error``).
  Download errors (``error_download_*``) are ``invalid_media`` but retryable: the upstream
  failed to read a file the gateway did upload. HTTP refusals carry
  ``{"status", "error", "error_code"}``; the document names no ``error_code`` (clients see
  ``InvalidParameters``, ``CreditInsufficiency``, ``InvalidAccessToken``, ``InvalidTaskId``,
  ``RateLimitExceeded``), so the code is kept as the failure's ``provider_code`` and the HTTP
  status is read (``HTTP_ERRORS``: 429 by the document, the rest by the HTTP standard); a 400
  naming a code is ``upstream_failed``, retryable, since the code, not the client, may be at
  fault. A 401 signs in again once and repeats the request. 5xx raise
  ``ProviderUnavailable``.
- **Aging** answers the uploaded photo among the results (``custom_info.age_idx``); it is left
  out. ``data`` carries ``estimated_age`` (``custom_info.age``) and ``ages`` (each output's
  ``res_age``). Makeup transfer's product recommendation is not documented enough to pass on.
- **Styles**: ``style_id`` is ``"<style_group_id>:<style_id>"`` (see ``perfectcorp_styles``).
- **Limits**, read as written: "Both conditions must be met". 100 requests per minute per
  access token (``default``: one token per credential) *and* 100 requests per 5 minutes per
  IP address (``egress``: every request the gateway sends from its address, whatever the
  credential, sign-ins and style listings included). A submission spends two (the file call
  and the task; the upload goes to storage, without the token). The egress budget spends all
  but 3 requests of each 5 minutes (sign-ins, made outside the budget, and lateness use
  those). Because a task is lost when not polled for 10 s, polls must never queue behind the
  budget for long: ``poll_wait_s`` (10 s less the 3-s longest poll gap and 2 s for lateness)
  caps the tasks run at once to what the rates can keep alive — on the documented numbers
  one task at a time per egress address (97 requests per 300 s × 5 s / 2 < 1), and a new task
  is admitted only when its slot frees. An operator with a larger contract raises both
  (``providers.perfectcorp.limits``: ``{"default": …, "egress": {"requests_per_minute": …}}``).
- **Prices.** The document gives no credit amount per task ("determined by your business
  plan"; charged only on success). Every task is priced alike: ``TASK_PRICE`` = 50 gateway
  credits (≈ $0.05), overridable in config.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from typing import Any, ClassVar

import httpx

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.models import JSONValue, UpstreamFile
from app.domain.operations import Operation, Params
from app.providers import _http
from app.providers._conform import UnreadablePicture, read_conformed
from app.providers._http import upstream_errors
from app.providers.base import (
    Adapter,
    Binding,
    Call,
    Failed,
    Media,
    OutputFile,
    PollResult,
    Progress,
    StyleListing,
    SubmitResult,
    Submitted,
    Succeeded,
    UpstreamLimit,
    poll_trouble,
)
from app.providers.media_limits import PERFECTCORP as IMAGE_LIMITS
from app.providers.perfectcorp_auth import Account, Refused, Tokens, account
from app.providers.perfectcorp_files import Submission, extension
from app.providers.perfectcorp_styles import style_page
from app.providers.perfectcorp_wire import (
    API_PREFIX,
    HAIR_VARIANTS,
    PROVIDER,
    STATUSES,
    TASK_LOST,
    Feature,
    action_params,
    engine_meaning,
    feature_for,
    output_ext,
    parse_style_id,
    read_http_error,
    result_object,
    styled_feature,
    task_body,
    unreadable,
)

DROP_AFTER_S = 10.0
"""A task not polled this long is lost ("the task will lose if no polling in 10 seconds")."""
MAX_POLL_GAP_S = 3.0
"""Longest wait between polls: the task is dropped when not polled for 10 s."""
POLL_LATENESS_S = 2.0
"""Room for a poll that goes out late (a busy worker, a slow answer) inside the 10 s."""
SUBMISSION_TTL_S = 24 * 3600.0
"""Uploaded files are kept one day; so is the record of an attempt's file ids."""
RESULT_RETENTION_S = 30 * 24 * 3600.0
"""'The resulting files generated by the system are kept on the server for 30 days'."""
RESULT_REUSE_MARGIN_S = 24 * 3600.0
"""A result's ``dst_id`` is sent only while a day of its 30 remains (a task may run late)."""
TASK_PRICE = 50
REQUESTS_PER_MINUTE = 100
REQUESTS_PER_IP = 100
IP_WINDOW_S = 300.0
"""The document's per-IP limit: 100 requests per 5 minutes from one address."""


def _style_refusal(params: Params) -> str | None:
    """A ``style_id`` that is not ``<group>:<style>`` (styled tasks require one: the
    binding's ``required``)."""
    style_id = getattr(params, "style_id", None)
    if isinstance(style_id, str) and parse_style_id(style_id) is None:
        return "style_id"
    return None


def _binding(*parameters: str, **values: frozenset[object]) -> Binding:
    return Binding(
        parameters=frozenset(parameters),
        values=values,
        price=TASK_PRICE,
        check=_style_refusal if "style_id" in parameters else None,
        required=frozenset({"style_id"}) if "style_id" in parameters else frozenset(),
    )


log = logging.getLogger(__name__)


class PerfectCorpAdapter(Adapter):
    name: ClassVar[str] = PROVIDER
    max_poll_gap_s: ClassVar[float | None] = MAX_POLL_GAP_S
    poll_lateness_s: ClassVar[float | None] = POLL_LATENESS_S
    bindings: ClassVar[Mapping[Operation, Binding]] = {
        Operation.image_hairstyle: _binding(
            "image", "variant", "style_id", variant=frozenset(HAIR_VARIANTS)
        ),
        Operation.image_age: _binding("image"),
        Operation.image_transfer_makeup: _binding("image", "reference"),
        # output_ext enums of the document's task schemas (2616, 2857, 3098)
        Operation.image_remove_object: _binding(
            "image", "mask", "output_format", output_format=frozenset({"jpeg", "webp"})
        ),
        Operation.image_colorize: _binding(
            "image", "output_format", output_format=frozenset({"jpeg", "webp"})
        ),
        Operation.image_remove_background: _binding(
            "image", "output_format", output_format=frozenset({"png", "webp"})
        ),
        Operation.image_upscale: _binding(
            "image",
            "scale",
            "output_format",
            scale=frozenset({1, 2, 4}),
            output_format=frozenset({"jpeg", "webp"}),
        ),
        Operation.image_generate: _binding(
            "prompt", "style_id", "output_format", output_format=frozenset({"jpeg"})
        ),
    }
    limits: ClassVar[Mapping[str, UpstreamLimit]] = {
        "default": UpstreamLimit(  # "Each access token … 100 requests per minute"
            rate_per_s=REQUESTS_PER_MINUTE / 60,
            requests_per_submit=2,  # POST file/<feature>, then POST task/<feature>
            poll_wait_s=DROP_AFTER_S - MAX_POLL_GAP_S - POLL_LATENESS_S,
        ),
        "egress": UpstreamLimit(  # "Each IP address … 100 requests per 5 minutes"
            rate_per_s=REQUESTS_PER_IP / IP_WINDOW_S,
            requests_per_submit=2,
            poll_wait_s=DROP_AFTER_S - MAX_POLL_GAP_S - POLL_LATENESS_S,
            window_s=IP_WINDOW_S,
        ),
    }
    egress_limit: ClassVar[str | None] = "egress"

    @cached_property
    def tokens(self) -> Tokens:
        return Tokens(self.client, self.base_url, self.state, self.config.timeout_s)

    # the contract --------------------------------------------------------------------------------

    async def submit(self, call: Call) -> SubmitResult:
        feature = feature_for(call.operation, call.params)
        if feature is None:
            message = f"{PROVIDER} does not serve {call.operation.value}"
            return Failed(ErrorCode.unsupported_operation, message)
        action = action_params(feature, call.params)
        if isinstance(action, str):
            return Failed(ErrorCode.invalid_parameter, action)
        try:
            acct = account(self.credential(call))
            submission = await self._submission(call, acct, feature)
            assert submission.request_id is not None
            ext = output_ext(feature, call.params)
            body = task_body(feature, submission.request_id, submission.file_ids, action, ext)
            response = await self._api(acct, "POST", f"/task/{feature.slug}", json=body)
        except Refused as refused:
            return refused.failed
        task_id = result_object(response).get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise unreadable("no task_id")
        return Submitted(task_id, poll_after_s=min(self.config.poll_interval_s, MAX_POLL_GAP_S))

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        feature = feature_for(call.operation, call.params)
        if feature is None:
            message = f"{PROVIDER} does not serve {call.operation.value}"
            return Failed(ErrorCode.unsupported_operation, message)
        try:
            acct = account(self.credential(call))
            query = {"task_id": provider_job_id}
            response = await self._api(acct, "GET", f"/task/{feature.slug}", params=query)
        except Refused as refused:
            if refused.failed.provider_code == TASK_LOST:  # Perfect's word: the task is gone
                await self._forget_request(call)
                return refused.failed
            return poll_trouble(refused.failed)  # 429, 401…: the task runs on, read it again
        result = result_object(response)
        status = result.get("status")
        if not isinstance(status, str) or not status:
            raise unreadable(f"no task status ({status!r})")
        meaning = STATUSES.get(status)
        if meaning is None:
            log.warning("%s: unknown task status %r; read as running", PROVIDER, status)
            meaning = "running"
        if meaning == "running":
            return Progress(poll_after_s=self._poll_gap(result.get("polling_interval")))
        if meaning == "error":
            error = result.get("error")
            code = error if isinstance(error, str) and error else "unknown_internal_error"
            await self._forget_request(call)
            reading = engine_meaning(code)
            message = f"{PROVIDER} {feature.slug} task error: {code}"
            return reading.failed(message, code)
        return await self._collect(result, acct)

    async def styles(
        self,
        operation: Operation,
        variant: str | None,
        page_size: int,
        starting_token: str | None,
    ) -> StyleListing:
        feature = styled_feature(operation, variant)
        if feature is None or not self.config.credentials:
            return StyleListing(styles=[])
        try:
            acct = account(self.config.credentials[0])
        except Refused as refused:
            raise ProviderUnavailable(refused.failed.message) from None

        async def fetch(path: str, query: dict[str, str | int]) -> dict[str, Any]:
            try:
                return result_object(await self._api(acct, "GET", path, params=query))
            except Refused as refused:
                raise ProviderUnavailable(refused.failed.message) from None

        return await style_page(fetch, feature, page_size, starting_token)

    # requests ------------------------------------------------------------------------------------

    async def _api(self, acct: Account, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API request with the shared token; a 401 signs in again and repeats it once."""
        url = f"{self.base_url}{API_PREFIX}{path}"
        token = await self.tokens.get(acct)
        response = await self._send(method, url, token, **kwargs)
        if response.status_code == 401:
            token = await self.tokens.get(acct, stale=token)
            response = await self._send(method, url, token, **kwargs)
        if response.status_code >= 300:
            raise Refused(read_http_error(response).failed(response.status_code))
        return response

    async def _send(self, method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        with upstream_errors(PROVIDER):
            return await self.client.request(
                method, url, headers=headers, timeout=self.config.timeout_s, **kwargs
            )

    def _poll_gap(self, polling_interval: object) -> float:
        if isinstance(polling_interval, int | float) and not isinstance(polling_interval, bool):
            return max(0.0, min(polling_interval / 1000, MAX_POLL_GAP_S))
        return min(self.config.poll_interval_s, MAX_POLL_GAP_S)

    # the attempt's record ------------------------------------------------------------------------

    def _record_key(self, call: Call, acct: Account) -> str:
        return f"submission:{call.job_id}:{call.attempt}:{acct.key}"

    async def _submission(self, call: Call, acct: Account, feature: Feature) -> Submission:
        """The attempt's files and request id: reused when saved, else uploaded and saved."""
        key = self._record_key(call, acct)
        record = Submission.load(await self.state.get(key))
        if (
            record is None
            or record.feature != feature.slug
            or set(record.file_ids) != set(feature.files)
        ):
            record = Submission(feature.slug, await self._upload(call, acct, feature))
            await self.state.put(key, record.dump(), SUBMISSION_TTL_S)
        if record.request_id is None:
            record.request_id = await self.state.incr(f"request_id:{acct.key}") - 1
            await self.state.put(key, record.dump(), SUBMISSION_TTL_S)
        return record

    async def _forget_request(self, call: Call) -> None:
        """After a task ends in error or is lost, the next attempt must not reuse its id."""
        try:
            acct = account(self.credential(call))
        except Refused:
            return
        key = self._record_key(call, acct)
        record = Submission.load(await self.state.get(key))
        if record is not None and record.request_id is not None:
            record.request_id = None
            await self.state.put(key, record.dump(), SUBMISSION_TTL_S)

    async def _upload(self, call: Call, acct: Account, feature: Feature) -> dict[str, str]:
        """``file/<feature>`` for every input, then each one's bytes to its upload URL; an
        earlier output this account still keeps goes by its ``dst_id`` instead, when it fits
        the task as it is."""
        refs = call.params.media()
        uploads: list[tuple[str, str, bytes, str]] = []
        file_ids: dict[str, str] = {}
        sent: dict[str, Media] = {}
        for field in feature.files:
            ref = refs.get(field)
            if ref is None:
                message = f"{PROVIDER} {feature.slug} needs {field}"
                raise Refused(Failed(ErrorCode.invalid_parameter, message))
            # a mask has "the exact same width and hight with the input image" as sent
            mask_of = sent.get("image") if field == "mask" else None
            try:
                media = await read_conformed(call, ref, IMAGE_LIMITS[feature.slug], mask_of)
            except UnreadablePicture as exc:
                message = f"{PROVIDER} cannot read the {field} input"
                raise Refused(Failed(ErrorCode.invalid_media, message)) from exc
            sent[field] = media
            kept = _kept_upstream(media, acct)
            if kept is not None:  # "No need to reupload file"
                file_ids[field] = kept
                continue
            content, content_type = media.content, media.content_type
            uploads.append((field, f"{field}.{extension(content_type)}", content, content_type))
        if not uploads:
            return file_ids
        body = {"files": [{"content_type": ct, "file_name": name} for _, name, _, ct in uploads]}
        response = await self._api(acct, "POST", f"/file/{feature.slug}", json=body)
        files = result_object(response).get("files")
        if not isinstance(files, list) or len(files) != len(uploads):
            raise unreadable("not one file per input")
        by_name = {f.get("file_name"): f for f in files if isinstance(f, dict)}
        for position, (field, name, content, _) in enumerate(uploads):
            entry = by_name.get(name, files[position])
            file_id = entry.get("file_id") if isinstance(entry, dict) else None
            requests = entry.get("requests") if isinstance(entry, dict) else None
            if not isinstance(file_id, str) or not isinstance(requests, list) or not requests:
                raise unreadable("a file without file_id or upload request")
            await self._put(requests[0], content)
            file_ids[field] = file_id
        return file_ids

    async def _put(self, request: object, content: bytes) -> None:
        if not isinstance(request, dict) or not isinstance(request.get("url"), str):
            raise unreadable("an upload request without url")
        headers = request.get("headers") or {}
        if not isinstance(headers, dict):
            raise unreadable("upload headers that are not an object")
        method = str(request.get("method") or "PUT").upper()
        with upstream_errors(PROVIDER):
            response = await self.client.request(
                method,
                request["url"],
                content=content,
                headers={str(k): str(v) for k, v in headers.items()},
                timeout=self.config.timeout_s,
            )
        if not response.is_success:
            raise ProviderUnavailable(f"{PROVIDER} upload answered HTTP {response.status_code}")

    # results -------------------------------------------------------------------------------------

    async def _collect(self, result: dict[str, Any], acct: Account) -> Succeeded:
        results = result.get("results")
        first = results[0] if isinstance(results, list) and results else None
        data = first.get("data") if isinstance(first, dict) else None
        if not isinstance(first, dict) or not isinstance(data, list) or not data:
            raise unreadable("success without results")
        custom = first.get("custom_info")
        skip = custom.get("age_idx") if isinstance(custom, dict) else None
        kept = [item for index, item in enumerate(data) if index != skip]
        files = [await self._download(item, acct) for item in kept]
        extra: dict[str, JSONValue] = {}
        if isinstance(custom, dict):
            if isinstance(custom.get("age"), int):
                extra["estimated_age"] = custom["age"]
            ages = [item.get("res_age") for item in kept if isinstance(item, dict)]
            extra["ages"] = [age for age in ages if isinstance(age, int)]
        return Succeeded(files=files, data=extra)

    async def _download(self, item: object, acct: Account) -> OutputFile:
        url = item.get("url") if isinstance(item, dict) else None
        url = _http.result_url(PROVIDER, url, "a result")
        output = await _http.download(
            self.client, PROVIDER, url, kind="image", timeout_s=self.config.timeout_s
        )
        dst_id = item.get("dst_id") if isinstance(item, dict) else None
        if not isinstance(dst_id, str) or not dst_id:
            return output
        until = time.time() + RESULT_RETENTION_S - RESULT_REUSE_MARGIN_S
        kept = UpstreamFile(provider=PROVIDER, account=acct.key, file_id=dst_id, usable_until=until)
        return replace(output, upstream=kept)


def _kept_upstream(media: Media, acct: Account) -> str | None:
    """The ``dst_id`` of an earlier output, when this account keeps it and the input is sent
    as it is (an input fitted to the task is new bytes: uploaded)."""
    kept = media.upstream
    if kept is None or kept.provider != PROVIDER or kept.account != acct.key:
        return None
    return kept.file_id if kept.usable_until > time.time() else None
