"""PixelAPI adapter (``providers/pixelapi.txt``): asynchronous jobs, polled until done.

================================  =====================================================
image.generate                    ``POST /v1/image/generate`` (JSON; ``flux-schnell``, ``sdxl``)
image.remove_background           ``POST /v1/image/remove-background``
image.replace_background          ``POST /v1/image/replace-background`` (+ ``prompt``)
image.upscale                     ``POST /v1/image/upscale`` (always 4×)
image.restore_face                ``POST /v1/image/restore-face``
image.remove_object               ``POST /v1/image/remove-object`` (``mask`` and/or ``prompt``)
audio.generate                    ``POST /v1/audio/generate`` (JSON; MusicGen, WAV out)
  all of the above                ``GET /v1/image/{generation_id}`` until ``completed``,
                                  ``failed`` or ``blocked``; then ``output_url`` is fetched
video.generate                    ``POST /v1/video/generate`` (JSON; WAN 2.1, MP4 out), polled
                                  at ``GET /v1/video/{generation_id}``
image.try_on                      ``POST /v1/virtual-tryon`` (JSON, base64 pictures), polled at
                                  ``GET /v1/virtual-tryon/jobs/{job_id}``; the result is the
                                  poll's ``result_image_b64``
catalog                           ``GET /v1/models`` (:meth:`models`), ``GET
                                  /v1/account/balance`` (:meth:`balance`), ``GET
                                  /v1/account/usage`` (:meth:`usage`); models and usage
                                  together in :meth:`account` (the admin upstream view)
================================  =====================================================

Every request carries ``Authorization: Bearer <key>`` and ``User-Agent: mediagate/0.1`` (the
CDN answers 403 to a missing or stock-library agent). Media: for remove/replace background,
upscale and restore face, a ``url`` reference goes out as JSON ``image_url`` and any other is
uploaded as the multipart ``image`` file; remove object is always multipart (``image``,
``mask``, ``prompt``: the only shape its section gives); try-on sends both pictures as plain
base64. The output download carries the User-Agent but never the key: ``output_url`` is a
public, expiring (24 h) file URL that may live on another host. The requests themselves are
built in ``pixelapi_requests``; the one mapping table is ``pixelapi_errors.TABLE``.

Readings of what the document leaves open (the sandbox emulator keeps the same ones):

- **Prices.** The document quotes two sets of credit costs: the pricing table and the FAQ say
  remove background 2, replace 5, generation 3, face restoration 3, object removal 5; each
  endpoint's heading and its response's ``credits_used`` say 4, 8, 5, 5, 8 (upscale is 20 in
  both). The account is charged what responses report, so the endpoint headings win. Audio's
  heading says "5–10" and the table splits it: 5 up to 15 s, 10 for 16–30 s (the response
  example's ``8.0`` for 15 s is the odd one out). Video's heading says "50–100" and its credit
  table is empty: 50 at 480p, 100 at 720p (twice the generation time). Try-on is 25. One
  gateway credit per PixelAPI credit ($0.001 on Starter); a binding has one price, so audio
  (10) and video (100) are priced at their upper bound.
- **Parameters.** Generation honours ``prompt``, ``model`` (default ``flux-schnell``, as in
  every example; both documented models are reachable), ``width``/``height`` (512–1536,
  refused outside), ``seed``, and ``negative_prompt`` with ``sdxl`` only ("SDXL only": with
  FLUX it would be dropped silently, so the binding refuses it). ``steps`` and
  ``guidance_scale`` have no canonical parameter; ``aspect`` and ``output_format`` are not
  documented and stay unsupported; outputs are PNG. Upscale takes no factor upstream: always
  4×, so ``scale`` is limited to 4; "Maximum resolution is 4096×4096" is read to hold for its
  output too (as the sandbox reads it), so an uploaded input is fitted to a long side of 1,024
  px (``media_limits.PIXELAPI_UPSCALE``). Replace background takes ``prompt`` only (no negative
  prompt or seed). Audio: ``prompt`` (3–500 characters upstream, refused outside),
  ``duration_s`` → ``duration`` (5–30, default 15), ``model`` (``musicgen-small``); no seed.
  Video: ``prompt``, ``negative_prompt``, ``duration_s`` → ``duration`` (1–10, default 3),
  ``resolution`` (``480p`` 832×480 default, ``720p``), ``seed``; text-to-video only, so
  ``image`` is refused. Try-on: ``person``, ``garment`` and ``category`` mapped by
  ``TRY_ON_CATEGORIES`` (``full_body`` → ``dress``, which the document describes as "full
  dresses, jumpsuits, full-body garments"; any value outside the table is refused by the
  binding); PixelAPI requires a category, so a request without one sends ``upperbody`` (the
  document's example). ``gender``, ``seed`` and ``output_format`` are not documented there.
- **Statuses** come from the table: ``queued``/``processing`` (and ``pending``, which
  PixelAPI's own client library reports) run; ``failed`` ("check error field"; video and
  try-on call it ``error_message``, so both are read) is an upstream failure worth a retry
  elsewhere; ``blocked`` is ``content_blocked``, the user's own, never retried. A status not
  in the table is logged with its raw value and read as running.
- **Polls** answer ``Failed`` only on PixelAPI's word about the job: a failure status, or 404
  (an unknown or expired job). Every other refusal of a status read (429, 401/403, 402, 5xx,
  a body that does not parse, an output download that fails) is ``PollTrouble`` or raised:
  the same job is polled again, never submitted again.
- **HTTP errors** come from the table: 401/403 → ``provider_auth_failed`` (the 403 is the
  CDN's, often not JSON), 402 → ``provider_unavailable`` (this account is empty; another
  provider can serve), 429 → ``provider_rate_limited`` with ``retry_after_s`` from
  ``Retry-After`` if sent, else ``X-RateLimit-Reset`` (Unix seconds, or seconds to wait when
  small), 400/422 → ``invalid_parameter``, 413 → ``media_too_large``, 404 (an unknown or
  expired job) → ``upstream_failed``; all but the user's own (400/413/422) are retryable. 5xx
  is raised as :class:`~app.domain.errors.ProviderUnavailable`. Try-on's ``detail.error`` codes win
  over the status: ``image_too_small``, ``wrong_aspect_ratio``, ``body_segmentation_failed``
  and ``invalid_image`` → ``invalid_media`` (the user's picture; not retried),
  ``invalid_category`` → ``invalid_parameter``, ``gpu_out_of_memory`` (503) →
  ``provider_unavailable``, retryable, returned (not raised) to keep its code.
- **Limits** (``LIMITS``). Requests per minute depend on the plan (``PLAN_REQUESTS_PER_MINUTE``:
  Free 5, Starter 20, Pro 60, Scale 200); no concurrency limit is documented. The gateway
  counts every submit *and* poll against an ``UpstreamLimit``, while the document asks for a
  poll every 2–3 s, which only fits the Free plan's 5/min if PixelAPI meters submissions
  alone (the emulator's reading). A budget at the lowest plan would space every poll 13 s
  apart and queue submissions behind polls (the end-to-end suite's PixelAPI jobs then miss
  their deadlines), so the budget is ``BUDGET_PLAN``, the sandbox account's Scale plan
  (200/min per credential); set it to the plan of the keys in use. Whatever the plan, a 429
  on a submission is ``provider_rate_limited`` with ``retry_after_s`` from ``Retry-After``,
  else ``X-RateLimit-Reset``; a 429 on a poll is ``PollTrouble`` after that wait (the upstream
  job runs on; failing it would resubmit and pay twice).
- **Models** are discoverable (``GET /v1/models`` "returns all available models and
  operations with their pricing"): :meth:`models` lists them. The bindings stay static (the
  gateway validates before it calls anyone); they cover every model the document names.
- **Balance**: ``GET /v1/account/balance`` → ``credits_remaining`` in PixelAPI credits.
- **Usage**: ``GET /v1/account/usage?limit=`` "returns your recent job history with
  operations, models, status, and output URLs"; its body is not shown, so entries are read
  by those words (``pixelapi_account``).
- **Callbacks**: webhooks exist on Pro and Scale "by contacting support", with no request
  parameter, so ``callback_url`` is not passed on; jobs are polled.
- **Bodies** that do not parse, or parse without the job id / ``status`` / the result where
  one is due, raise ``ProviderUnavailable``; they never crash the worker.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Final
from urllib.parse import quote

import httpx

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.media import MediaInput
from app.domain.media_types import media_type
from app.domain.operations import Operation, Params
from app.providers import _http
from app.providers import pixelapi_requests as requests
from app.providers._http import upstream_errors
from app.providers._meaning import Meaning
from app.providers.base import (
    Adapter,
    Binding,
    Call,
    Credential,
    Failed,
    OutputFile,
    PollResult,
    Progress,
    ProviderBalance,
    SubmitResult,
    Submitted,
    Succeeded,
    UpstreamAccount,
    UpstreamJob,
    UpstreamLimit,
    UpstreamModel,
    poll_trouble,
)
from app.providers.pixelapi_account import USAGE_LIMIT_MAX, read_models, read_usage
from app.providers.pixelapi_errors import (
    PROVIDER,
    failure,
    job_failure,
    job_stage,
    json_object,
    unreadable,
)
from app.providers.pixelapi_requests import Kind

USER_AGENT = "mediagate/0.1"

PLAN_REQUESTS_PER_MINUTE: Final[Mapping[str, int]] = {
    "free": 5,
    "starter": 20,
    "pro": 60,
    "scale": 200,
}
"""The document's "Rate Limits & Plans" table."""
ASSUMED_PLAN = "starter"
"""A credential whose plan is not configured is taken to be on the most careful paid plan."""
LIMITS: Final[Mapping[str, UpstreamLimit]] = {
    "default": UpstreamLimit(rate_per_s=PLAN_REQUESTS_PER_MINUTE[ASSUMED_PLAN] / 60),
}
QUEUED_PATIENCE_S = 120.0
"""The document: a job stuck in "queued" — "Wait up to 2 minutes. If still queued, retry"."""
STUCK_IN_QUEUE = "stuck_in_queued"

PRICES: Final[Mapping[Operation, int]] = {
    Operation.image_generate: 5,
    Operation.image_remove_background: 4,
    Operation.image_replace_background: 8,
    Operation.image_upscale: 20,
    Operation.image_restore_face: 5,
    Operation.image_remove_object: 8,
    Operation.image_try_on: 25,
    Operation.audio_generate: 10,
    Operation.video_generate: 100,
}
"""Gateway credits (one per PixelAPI credit); audio and video at their upper bound."""


def _credits_used(body: Mapping[str, Any]) -> float | None:
    """``credits_used`` of a submission or status answer: what the task costs the account."""
    used = body.get("credits_used")
    if isinstance(used, bool) or not isinstance(used, int | float) or used < 0:
        return None
    return float(used)


def _media_type(content: bytes, declared: str, kind: Kind) -> str:
    """The declared type when it is of the expected kind, else what the bytes say they are."""
    found = media_type(content, kind, declared)
    if found is None:
        raise unreadable(f"output is {declared or 'untyped'}, not {kind}")
    return found


class PixelApiAdapter(Adapter):
    name: ClassVar[str] = PROVIDER
    limits: ClassVar[Mapping[str, UpstreamLimit]] = LIMITS
    bindings: ClassVar[Mapping[Operation, Binding]] = {
        Operation.image_generate: Binding(
            parameters=frozenset(
                {
                    "prompt",
                    "model",
                    "negative_prompt",
                    "width",
                    "height",
                    "steps",
                    "guidance_scale",
                    "seed",
                }
            ),
            values={"model": frozenset(requests.IMAGE_MODELS)},
            price=PRICES[Operation.image_generate],
            check=requests.refuse_generate,
        ),
        Operation.image_remove_background: Binding(
            parameters=frozenset({"image"}), price=PRICES[Operation.image_remove_background]
        ),
        Operation.image_replace_background: Binding(
            parameters=frozenset({"image", "prompt"}),
            price=PRICES[Operation.image_replace_background],
        ),
        Operation.image_upscale: Binding(
            parameters=frozenset({"image", "scale"}),
            values={"scale": frozenset({requests.UPSCALE_FACTOR})},
            price=PRICES[Operation.image_upscale],
        ),
        Operation.image_restore_face: Binding(
            parameters=frozenset({"image"}), price=PRICES[Operation.image_restore_face]
        ),
        Operation.image_remove_object: Binding(
            parameters=frozenset({"image", "mask", "prompt"}),
            price=PRICES[Operation.image_remove_object],
        ),
        Operation.image_try_on: Binding(
            parameters=frozenset({"person", "garment", "category"}),
            values={"category": frozenset(requests.TRY_ON_CATEGORIES)},
            price=PRICES[Operation.image_try_on],
        ),
        Operation.audio_generate: Binding(
            parameters=frozenset({"prompt", "duration_s", "model"}),
            values={"model": frozenset(requests.AUDIO_MODELS)},
            price=PRICES[Operation.audio_generate],
            check=requests.refuse_audio,
        ),
        Operation.video_generate: Binding(
            parameters=frozenset({"prompt", "negative_prompt", "duration_s", "resolution", "seed"}),
            price=PRICES[Operation.video_generate],
        ),
    }

    def _plan_of(self, credential: Credential) -> str:
        return credential.plan or ASSUMED_PLAN

    def credential_limits(self, name: str) -> tuple[UpstreamLimit, ...]:
        """Each credential at its plan's rate, unless a plan over all of them is configured
        (``providers.pixelapi.limits``)."""
        if name != "default" or "default" in self.config.limits:
            return ()
        return tuple(
            UpstreamLimit(rate_per_s=PLAN_REQUESTS_PER_MINUTE[self._plan_of(c)] / 60)
            for c in self.config.credentials
        )

    def plans(self) -> list[str]:
        return [
            c.plan if c.plan else f"{ASSUMED_PLAN} (assumed: no plan configured)"
            for c in self.config.credentials
        ]

    def _headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    async def _get(self, path: str, api_key: str | None) -> httpx.Response:
        with upstream_errors(PROVIDER):
            return await self.client.get(
                f"{self.base_url}{path}",
                headers=self._headers(api_key),
                timeout=self.config.timeout_s,
            )

    # jobs -------------------------------------------------------------------------------------

    def reads(self, operation: Operation, params: Params) -> list[MediaInput]:
        """Object removal and try-on upload their pictures; the others send a URL as
        ``image_url``."""
        if operation in requests.READS_BYTES:
            return list(params.media().values())
        return [ref for ref in params.media().values() if ref.url is None]

    async def submit(self, call: Call) -> SubmitResult:
        build = requests.BUILDERS.get(call.operation)
        if build is None:
            message = f"{PROVIDER} does not serve {call.operation.value}"
            return Failed(ErrorCode.unsupported_operation, message)
        endpoint = requests.ENDPOINTS[call.operation]
        request = await build(call)
        headers = self._headers(self.credential(call).api_key)
        with upstream_errors(PROVIDER):
            response = await self.client.post(
                f"{self.base_url}{endpoint.submit}",
                headers=headers,
                timeout=self.config.timeout_s,
                **request,
            )
        if (failed := failure(response)) is not None:
            return failed
        body = json_object(response)
        job_id = body.get(endpoint.id_field)
        if not isinstance(job_id, str) or not job_id:
            raise unreadable(f"no {endpoint.id_field}")
        return Submitted(job_id, poll_after_s=self.config.poll_interval_s, cost=_credits_used(body))

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        endpoint = requests.ENDPOINTS[call.operation]
        path = endpoint.poll.format(id=quote(provider_job_id, safe=""))
        response = await self._get(path, self.credential(call).api_key)
        if (failed := failure(response)) is not None:
            if response.status_code == 404:  # an unknown or expired job: PixelAPI's word
                return failed
            return poll_trouble(failed)  # the job runs on: read it again later
        body = json_object(response)
        stage = job_stage(body.get("status"))
        if stage == "running":
            if body.get("status") == "queued" and await self._stuck(provider_job_id):
                message = f"{PROVIDER} job still queued after {QUEUED_PATIENCE_S:.0f} s"
                return Failed(ErrorCode.upstream_timeout, message, STUCK_IN_QUEUE, retryable=True)
            return Progress(poll_after_s=self.config.poll_interval_s)
        cost = _credits_used(body)
        if isinstance(stage, Meaning):
            return replace(job_failure(str(body["status"]), stage, body), cost=cost)
        if endpoint.id_field == "job_id":
            return replace(self._inline_result(body.get("result_image_b64")), cost=cost)
        return replace(await self._download(body.get("output_url"), endpoint.output), cost=cost)

    async def _stuck(self, provider_job_id: str) -> bool:
        """Whether the job has been ``queued`` longer than the document says to wait (from
        the first poll that saw it queued, shared by every worker)."""
        if self._state is None:
            return False
        key = f"queued:{provider_job_id}"
        now = time.time()
        first = await self.state.get(key)
        if first is None:
            await self.state.put(key, repr(now), 10 * QUEUED_PATIENCE_S, only_new=True)
            return False
        try:
            return now - float(first) > QUEUED_PATIENCE_S
        except ValueError:
            return False

    def _inline_result(self, encoded: object) -> Succeeded:
        """Try-on: the picture is in the poll's ``result_image_b64``."""
        if not isinstance(encoded, str) or not encoded:
            raise unreadable("completed without result_image_b64")
        try:
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise unreadable("result_image_b64 is not base64") from exc
        return Succeeded(files=[OutputFile(content, _media_type(content, "", "image"))])

    async def _download(self, output_url: object, kind: Kind) -> Succeeded:
        url = _http.result_url(PROVIDER, output_url, "completed")
        output = await _http.download(
            self.client,
            PROVIDER,
            url,
            kind=kind,
            timeout_s=self.config.timeout_s,
            headers={"User-Agent": USER_AGENT},
        )
        return Succeeded(files=[output])

    # catalog ----------------------------------------------------------------------------------

    def _account_key(self) -> str | None:
        pool = self.config.credentials
        return pool[0].api_key if pool else None

    async def _catalog(self, path: str) -> dict[str, Any] | list[Any]:
        response = await self._get(path, self._account_key())
        if (failed := failure(response)) is not None:
            raise ProviderUnavailable(failed.message)
        body = _http.json_body(PROVIDER, response)
        if not isinstance(body, dict | list):
            raise unreadable("not a JSON object or list")
        return body

    async def balance(self) -> ProviderBalance:
        """``credits_remaining`` of the first credential's account, in PixelAPI credits."""
        body = await self._catalog("/v1/account/balance")
        remaining = body.get("credits_remaining") if isinstance(body, dict) else None
        if isinstance(remaining, bool) or not isinstance(remaining, int | float):
            raise unreadable("no credits_remaining")
        return ProviderBalance(amount=float(remaining), unit="credits")

    async def models(self) -> list[UpstreamModel]:
        """``GET /v1/models``: every model and operation with its credits."""
        return read_models(await self._catalog("/v1/models"))

    async def usage(self, limit: int = 20) -> list[UpstreamJob]:
        """``GET /v1/account/usage?limit=``: the account's newest jobs (``limit`` 1–100)."""
        limit = max(1, min(limit, USAGE_LIMIT_MAX))
        return read_usage(await self._catalog(f"/v1/account/usage?limit={limit}"))

    async def account(self, recent: int) -> UpstreamAccount:
        """The models and the ``recent`` newest jobs of the first credential's account."""
        return UpstreamAccount(models=await self.models(), recent_jobs=await self.usage(recent))
