"""ImagePipeline adapter (``providers/imagepipeline.txt``): asynchronous jobs on public URLs.

==========================  ===========================================================
image.swap_face             ``POST /identity/faceswap/image/v1`` (``source``, ``target``)
image.lock_identity         ``POST /identity/lock/image/v1`` (``face`` → ``input_image``)
image.replace_identity      ``POST /identity/replace/image/v1`` (``image`` → ``input_image``)
image.instamodel            ``POST /creator/instamodel/image/v1`` (``face`` → ``input_face``)
image.try_on                ``POST /creator/tryon/image/v1`` (``person_image``,
                            ``clothing_image``, ``gender``, ``clothing_type``)
audio.clone_voice           ``POST /identity/voice/clone/v1`` (``reference_audio`` →
                            ``reference_voice_url``, a WAV: other audio is converted)
every job                   ``GET <endpoint>/status/{job_id}`` until a terminal status, then
                            ``result_url`` is downloaded (no key: a pre-signed link)
==========================  ===========================================================

Every request carries ``X-API-Key``; bodies are flat JSON and every input is a public URL
(``call.media.public_url``). The voice reference is "Public URL of the reference voice audio
(WAV)" (413): it is read first (a client's URL fetched under the tenant's fetch slots), and
other audio is converted to WAV (``_conform_av``, recorded on the attempt as ``conformed``)
and sent as a signed gateway URL to the converted file (``call.media.publish``).
``callback_url`` is sent when the gateway has one: the webhook only makes the gateway poll at
once (``app.jobs.upstream_callbacks``), its body is never read.

Readings of what the document leaves open (the sandbox emulator keeps the same ones):

- **Jobs.** The document sends readers to its *Jobs* and *Errors* pages for the lifecycle.
  Read with them: a submission answers ``{"job_id", "status": "queued", …}``; statuses are
  ``queued``, ``pending``, ``processing`` (running; ``progress`` is 0–100), ``completed``
  (``result_url``, ``result_mime_type``, ``processing_time_seconds``,
  ``balance_remaining_usd``), ``failed`` (``error``, ``failure_reason_code``, ``retryable``)
  and ``cancelled``. The poll path is the submission path plus ``/status/{job_id}``.
- **Errors.** The document names no error: no HTTP status, no ``failure_reason_code``. HTTP
  answers are read by the HTTP standard (``HTTP_ERRORS``: 400/422 the request, 401/403 auth,
  413 too large, 429 with ``Retry-After``; 5xx raises); a ``failed`` job is
  ``upstream_failed`` (retryable), a ``cancelled`` one is not retried, and the upstream's
  ``failure_reason_code`` (``INPUT_INVALID``…) is kept as the failure's ``provider_code``,
  never read into a meaning the document does not give it.
- **Balance.** Every answer carrying ``balance_remaining_usd`` is remembered in shared state
  per credential (keyed by a hash of the key); :meth:`balance` reports the first one's.
- **Parameters.** ``upscale`` is a factor (1.0–4.0, default 1.5) upstream: canonical
  ``upscale: false`` sends 1.0, ``scale`` sends the factor (``scale`` with ``upscale: false``
  is refused). ``enhance_face: false`` sends ``restore_weight`` 0.0 (a positive
  ``restore_weight`` with it is refused). Canonical ``gender`` male/female is man/woman;
  ``category`` becomes a ``clothing_type`` phrase from ``CLOTHING_TYPES``; both are required
  upstream, so a try-on without them is refused. ``steps`` is ``num_inference_steps``;
  ``language`` is ``language_id`` (primary subtag: ``en-US`` → ``en``); ``watermark`` is
  ``apply_watermark``; ``exaggeration`` is 0.0–1.0 upstream. Sizes: 2048 px at most (try-on
  256–2048). ``server_id`` (Enterprise pod pin) is not offered. Replace-identity describes the
  new person by ``prompt`` (and ``profile_id``): it takes no face picture.
- **Prices.** The document lists none. Each binding is priced at $0.001 per second of the
  document's example ``processing_time_seconds`` (rounded up; 1 credit = $0.001): faceswap 23,
  lock 39, replace 33, instamodel 30, try-on 44, voice clone 7.
- **Limits.** The document names rate and concurrency failures but gives no numbers: none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from app.domain.errors import ErrorCode
from app.domain.media import MediaInput
from app.domain.operations import (
    CloneVoice,
    Operation,
    Params,
)
from app.providers import _http
from app.providers._conform_av import UnconvertibleAudio, read_conformed_audio
from app.providers._http import upstream_errors
from app.providers._meaning import Meaning
from app.providers.base import (
    Adapter,
    Binding,
    Call,
    Failed,
    PollResult,
    Progress,
    ProviderBalance,
    SubmitResult,
    Submitted,
    Succeeded,
    poll_trouble,
)
from app.providers.imagepipeline_wire import (
    BALANCE_TTL_S,
    CLOTHING_TYPES,
    GENDERS,
    PROVIDER,
    WIRES,
    clone_voice_refusal,
    credential_key,
    http_failure,
    job_failure,
    json_object,
    size_refusal,
    status_meaning,
    swap_face_refusal,
    try_on_refusal,
    unreadable,
)
from app.providers.media_limits import IMAGEPIPELINE_VOICE_REFERENCE, AvLimits

log = logging.getLogger(__name__)


class ImagePipelineAdapter(Adapter):
    name: ClassVar[str] = PROVIDER
    takes_callbacks: ClassVar[bool] = True
    fetches_inputs: ClassVar[bool] = True
    bindings: ClassVar[Mapping[Operation, Binding]] = {
        Operation.image_swap_face: Binding(
            WIRES[Operation.image_swap_face].parameters, price=23, check=swap_face_refusal
        ),
        Operation.image_lock_identity: Binding(
            WIRES[Operation.image_lock_identity].parameters, price=39, check=size_refusal
        ),
        Operation.image_replace_identity: Binding(
            WIRES[Operation.image_replace_identity].parameters, price=33
        ),
        Operation.image_instamodel: Binding(
            WIRES[Operation.image_instamodel].parameters, price=30, check=size_refusal
        ),
        Operation.image_try_on: Binding(
            WIRES[Operation.image_try_on].parameters,
            values={"category": frozenset(CLOTHING_TYPES), "gender": frozenset(GENDERS)},
            required=frozenset({"gender", "category"}),
            price=44,
            check=try_on_refusal,
        ),
        Operation.audio_clone_voice: Binding(
            WIRES[Operation.audio_clone_voice].parameters, price=7, check=clone_voice_refusal
        ),
    }
    """Prices: $0.001 per second of each endpoint's example ``processing_time_seconds``."""
    media_limits: ClassVar[Mapping[Operation, Mapping[str, AvLimits]]] = {
        Operation.audio_clone_voice: {"reference_audio": IMAGEPIPELINE_VOICE_REFERENCE},
    }

    def _headers(self, call: Call) -> dict[str, str]:
        key = self.credential(call).api_key
        return {"X-API-Key": key} if key else {}

    def reads(self, operation: Operation, params: Params) -> list[MediaInput]:
        """Every input goes to ImagePipeline as a URL (``call.media.public_url``); the voice
        reference is read first, to be converted when it is not a WAV."""
        if isinstance(params, CloneVoice):
            return [params.reference_audio]
        return []

    async def _voice_reference(self, call: Call) -> str | Failed:
        """The URL of the reference as a WAV: the input's own URL when it is one, else the
        gateway's URL of its conversion."""
        assert isinstance(call.params, CloneVoice)
        ref = call.params.reference_audio
        try:
            converted = await read_conformed_audio(call, ref, IMAGEPIPELINE_VOICE_REFERENCE)
        except UnconvertibleAudio as exc:
            message = f"reference_audio: {exc}"
            return Failed(ErrorCode.invalid_media, message)
        if converted is None:
            return call.media.public_url(ref)
        return await call.media.publish(converted)

    async def submit(self, call: Call) -> SubmitResult:
        wire = WIRES.get(call.operation)
        if wire is None:
            message = f"{PROVIDER} does not serve {call.operation.value}"
            return Failed(ErrorCode.unsupported_operation, message)
        body = wire.body(call)
        if call.operation is Operation.audio_clone_voice:
            reference = await self._voice_reference(call)
            if isinstance(reference, Failed):
                return reference
            body["reference_voice_url"] = reference
        if call.callback_url:
            body["callback_url"] = call.callback_url
        url = f"{self.base_url}{wire.endpoint}"
        with upstream_errors(PROVIDER):
            response = await self.client.post(
                url, json=body, headers=self._headers(call), timeout=self.config.timeout_s
            )
        if (failed := http_failure(response)) is not None:
            return failed
        answer = json_object(response)
        await self._remember_balance(call, answer)
        job_id = answer.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise unreadable("no job_id")
        status = answer.get("status")
        if isinstance(status_meaning(status), Meaning):
            return job_failure(answer, str(status))
        return Submitted(job_id, poll_after_s=self.config.poll_interval_s)

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        wire = WIRES.get(call.operation)
        if wire is None:
            message = f"{PROVIDER} does not serve {call.operation.value}"
            return Failed(ErrorCode.unsupported_operation, message)
        url = f"{self.base_url}{wire.endpoint}/status/{quote(provider_job_id, safe='')}"
        with upstream_errors(PROVIDER):
            response = await self.client.get(
                url, headers=self._headers(call), timeout=self.config.timeout_s
            )
        if (failed := http_failure(response)) is not None:
            if response.status_code == 404:  # "Job not found": ImagePipeline's word
                return failed
            return poll_trouble(failed)  # 429, 401…: the job runs on, read it again
        body = json_object(response)
        await self._remember_balance(call, body)
        status = body.get("status")
        if not isinstance(status, str) or not status:
            raise unreadable(f"no status ({status!r})")
        meaning = status_meaning(status)
        if meaning is None:
            log.warning("%s: unknown job status %r; read as running", PROVIDER, status)
            meaning = "running"
        if meaning == "running":
            progress = body.get("progress")
            fraction = None
            if isinstance(progress, int | float) and not isinstance(progress, bool):
                fraction = min(1.0, max(0.0, progress / 100))
            return Progress(fraction, poll_after_s=self.config.poll_interval_s)
        if isinstance(meaning, Meaning):
            return job_failure(body, str(status))
        kind = "audio" if call.operation is Operation.audio_clone_voice else "image"
        return await self._download(body.get("result_url"), body.get("result_mime_type"), kind)

    async def _download(self, result_url: object, hinted: object, kind: str) -> Succeeded:
        url = _http.result_url(PROVIDER, result_url, "completed")
        output = await _http.download(
            self.client, PROVIDER, url, kind=kind, hinted=hinted, timeout_s=self.config.timeout_s
        )
        return Succeeded(files=[output])

    # balance ----------------------------------------------------------------------------------

    async def _remember_balance(self, call: Call, body: Mapping[str, Any]) -> None:
        value = body.get("balance_remaining_usd")
        if isinstance(value, int | float) and not isinstance(value, bool):
            key = credential_key(self.credential(call).api_key)
            await self.state.put(key, repr(float(value)), BALANCE_TTL_S)

    async def balance(self) -> ProviderBalance | None:
        pool = self.config.credentials
        stored = await self.state.get(credential_key(pool[0].api_key if pool else None))
        if stored is None:
            return None
        try:
            return ProviderBalance(float(stored), "usd")
        except ValueError:
            return None
