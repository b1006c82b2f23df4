"""Everypixel Labs adapter (``providers/everypixel.txt``): analyses answer at once, media tasks
are created and polled.

================================  =====================================================
image.keywords                    ``/v1/keywords`` (``num_keywords`` ≤ 50, ``threshold``,
                                  ``lang``, ``colors``, ``num_colors``)
image.caption                     ``/v1/image_captioning`` (``caption_len``)
image.faces                       ``/v1/faces`` (age, score, box and age class per face)
image.quality                     ``/v1/quality`` (``model`` stock) or ``/v1/quality_ugc``
                                  (``model`` ugc, adds a class 1–5)
video.keywords                    ``/v1/video_keywords`` (``num_keywords``, ``threshold``)
image.swap_face                   ``/v1/imageswap/create`` (``enhance_face`` → ``use_gfpgan``)
video.swap_face                   ``/v1/videoswap/create`` (``enhance_face`` → ``use_gfpgan``)
video.lipsync                     ``/v1/lipsync/create`` (``model`` normal or fast)
audio.speech                      ``/v1/tts/create`` (``voice``, ``text``); voices from
                                  ``GET /v1/tts/voices``
every task                        ``GET /v1/status?task_id=`` until ``SUCCESS``, ``FAILURE``
                                  or ``REVOKED``; then the ``result`` URL is downloaded
================================  =====================================================

Every request signs in with HTTP Basic ``client_id:client_secret`` of the call's key pair. The
result download carries no credentials: it is a file URL on Everypixel's storage.

Outputs in ``Succeeded.data`` (provider-neutral keys):

- image.keywords: ``{"keywords": [{"keyword": str, "score": float}, …]}`` best first, plus
  ``"colors": [{"name": str, "rgb": [r, g, b], "hex": "#rrggbb", "percentage": float}, …]``
  when ``colors`` was asked for;
- video.keywords: ``{"keywords": [{"keyword": str, "score": float}, …]}``;
- image.caption: ``{"caption": str}``;
- image.faces: ``{"faces": [{"age": float, "score": float, "bbox": [x1, y1, x2, y2],
  "class": str}, …]}`` (an empty list when no face was found: a result, not a failure);
- image.quality: ``{"quality": {"score": float, "class": int | None}}`` (``class`` 1–5 from
  the ugc model only).

Swaps, lipsync and speech answer files only (image, MP4 video, audio).

Readings of what the document leaves open (the sandbox emulator keeps the same ones):

- **Media.** A keywording (image or video) whose input is a client URL is a ``GET`` with ``url``
  (the parameters in the query string); an uploaded file is read and ``POST``-ed as the
  multipart field ``data`` with the parameters still in the query string ("query parameters").
  Captioning, faces and both quality models take "JPEG or PNG" (324, 370; 425 and 469: "provided
  either by URL or by file upload. Supported image formats are JPEG and PNG"), a rule for URLs
  as much as for uploads; the gateway takes other pictures (WebP), and cannot tell a URL's type
  without reading it. So, on the careful side, these four endpoints always read their picture (a
  client URL is fetched by the gateway, before the upstream budget is taken, ``reads``), fit it
  to ``media_limits.EVERYPIXEL_PICTURES`` (another type re-encoded as PNG, an EXIF orientation
  applied to the pixels: ``_conform.read_conformed``, recorded on the attempt) and ``POST`` it;
  they never hand Everypixel a URL. A picture Pillow cannot read fails ``invalid_media`` unsent
  when its declared type is not JPEG or PNG (else it goes as it is and Everypixel judges it).
  Keywording names no type: its URL is handed over, its upload sent as it is. Tasks go out as
  ``GET`` with ``source_url``/``target_url`` (``audio_url``/``video_url`` for lipsync) when
  every input is a URL, else as a multipart ``POST`` (``source``/``target``,
  ``audio``/``video``), reading URL inputs too: the document's ``GET`` variant lists only
  ``title`` and ``callback`` as optional parameters, so ``use_gfpgan`` (a form field of the
  ``POST``) forces the ``POST``. Lipsync's ``model`` is listed for both. Speech is always a form
  ``POST`` (a text of 10,000 characters does not belong in a URL). Tasks carry ``title`` = the
  gateway job id (it names the output file) and ``callback`` = ``call.callback_url`` when the
  gateway has one (its POST only makes the gateway poll at once; the status call decides, see
  ``app.jobs.upstream_callbacks``).
- **Status.** The universal ``/v1/status`` is used (one example polls
  ``/v1/imageswap/status``; the text names the universal endpoint). ``result`` is "string or
  object": a URL string, or an object holding ``url``/``file_url``. A ``progress`` in [0, 1]
  becomes the progress fraction.
- **Limits** are per key pair, per endpoint: "up to 30 requests per second for most
  endpoints", "the Age Recognition endpoint … up to 10", image captioning and video keywording
  "1 request per second"; the document ties none of them to the account, while it does say the
  tasks run "one at a time per account". So each key pair has a rate budget per endpoint
  (status polls count against the task's budget), and each task kind runs one at a time per key
  pair (``concurrent_jobs=1``). Key pairs of one account still share one upstream queue: pooled
  pairs of one account only wait longer (``PENDING`` with a ``queue`` position), they are never
  refused. Pool key pairs of different accounts to run tasks side by side.
- **HTTP errors** come from one table (``HTTP_ERRORS``). 502 is the document's "too many
  simultaneous requests": ``provider_rate_limited``, retryable after a second (the window is
  one second). 429 is the plan's requests used up ("after exceeding the number of available
  requests from your plan, you will see error 429"): the account is empty, so
  ``provider_unavailable``, retryable elsewhere, as PixelAPI's 402. 401/403 are the key pair
  (``provider_auth_failed``); 400 an invalid value, 413 a file over the size limit, 404 an
  unknown (or expired, after 24 h) task. Other 5xx raise
  :class:`~app.domain.errors.ProviderUnavailable`. Error bodies are
  ``{"status": "error", "message"}``;
  a 2xx body saying ``"status": "error"`` is read as the 400 it should have been.
- **Task failures.** ``FAILURE`` carries at most a ``message``: by default an upstream failure
  worth a retry elsewhere ("you might only see failure and need to try again");
  ``REVOKED`` (cancelled upstream) likewise. The message refines it through ``MESSAGES``:
  no face found → ``no_face_detected``, moderation → ``content_blocked``, unreadable or missing
  media ("Unsupported file format", "Image URL is missing") → ``invalid_media``; these are the
  user's own and never retried. The same refinement applies to 400 bodies.
- **Prices.** The document quotes none ("see the Pricing page"); the defaults are estimates
  at 1 credit ≈ $0.001: 2 per image analysis, 10 per video keywording, 10 per speech, 20 per
  image swap, 100 per lipsync or video swap.
- Bodies that do not parse, or parse without what is due (``task_id``, ``keywords``, a result
  URL), raise ``ProviderUnavailable``; they never crash the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import httpx
from pydantic import ValidationError

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.domain.media import MediaInput
from app.domain.operations import (
    Faces,
    ImageCaption,
    ImageKeywords,
    ImageQuality,
    Lipsync,
    Operation,
    Params,
    Speech,
    SwapFace,
    SwapFaceVideo,
    VideoKeywords,
)
from app.providers import _http
from app.providers._conform import UnreadablePicture, read_conformed
from app.providers._http import upstream_errors
from app.providers._meaning import Meaning
from app.providers.base import (
    Adapter,
    Binding,
    Call,
    Failed,
    PollResult,
    Progress,
    SubmitResult,
    Submitted,
    Succeeded,
    UpstreamLimit,
    Voice,
    poll_trouble,
)
from app.providers.everypixel_wire import (
    ANALYSES,
    EXPECTED_MEDIA,
    LANGUAGES,
    MAX_KEYWORDS,
    PROVIDER,
    QUALITY_ENDPOINTS,
    READERS,
    STATUSES,
    TASKS,
    TaskAnswer,
    VoiceAnswer,
    flag,
    http_failure,
    json_body,
    json_object,
    refine,
    result_url,
    unreadable,
)
from app.providers.media_limits import EVERYPIXEL_PICTURES, EVERYPIXEL_VIDEO_KEYWORDS, AvLimits

log = logging.getLogger(__name__)


class EverypixelAdapter(Adapter):
    name: ClassVar[str] = PROVIDER
    takes_callbacks: ClassVar[bool] = True
    limits: ClassVar[Mapping[str, UpstreamLimit]] = {
        "keywords": UpstreamLimit(rate_per_s=30),
        "quality": UpstreamLimit(rate_per_s=30),
        "faces": UpstreamLimit(rate_per_s=10),
        "caption": UpstreamLimit(rate_per_s=1),
        "video_keywords": UpstreamLimit(rate_per_s=1),
        "tts": UpstreamLimit(rate_per_s=30, concurrent_jobs=1),
        "lipsync": UpstreamLimit(rate_per_s=30, concurrent_jobs=1),
        "imageswap": UpstreamLimit(rate_per_s=30, concurrent_jobs=1),
        "videoswap": UpstreamLimit(rate_per_s=30, concurrent_jobs=1),
    }
    media_limits: ClassVar[Mapping[Operation, Mapping[str, AvLimits]]] = {
        Operation.video_keywords: {"video": EVERYPIXEL_VIDEO_KEYWORDS},
    }
    bindings: ClassVar[Mapping[Operation, Binding]] = {
        Operation.image_keywords: Binding(
            parameters=frozenset(
                {"image", "num_keywords", "threshold", "lang", "colors", "num_colors"}
            ),
            values={"lang": LANGUAGES},
            price=2,
            limit="keywords",
        ),
        Operation.image_caption: Binding(
            parameters=frozenset({"image", "caption_len"}), price=2, limit="caption"
        ),
        Operation.image_faces: Binding(parameters=frozenset({"image"}), price=2, limit="faces"),
        Operation.image_quality: Binding(
            parameters=frozenset({"image", "model"}),
            values={"model": frozenset(QUALITY_ENDPOINTS)},
            price=2,
            limit="quality",
        ),
        Operation.video_keywords: Binding(
            parameters=frozenset({"video", "num_keywords", "threshold"}),
            price=10,
            limit="video_keywords",
        ),
        Operation.image_swap_face: Binding(
            parameters=frozenset({"source", "target", "enhance_face"}), price=20, limit="imageswap"
        ),
        Operation.video_swap_face: Binding(
            parameters=frozenset({"source", "target", "enhance_face"}),
            price=100,
            limit="videoswap",
        ),
        Operation.video_lipsync: Binding(
            parameters=frozenset({"video", "audio", "model"}),
            values={"model": frozenset({"normal", "fast"})},
            price=100,
            limit="lipsync",
        ),
        Operation.audio_speech: Binding(
            parameters=frozenset({"text", "voice", "title"}), price=10, limit="tts"
        ),
    }

    def _auth(self, call: Call | None = None) -> httpx.BasicAuth | None:
        pool = self.config.credentials
        credential = self.credential(call) if call is not None else (pool[0] if pool else None)
        if credential is None or credential.client_id is None:
            return None
        return httpx.BasicAuth(credential.client_id, credential.client_secret or "")

    def reads(self, operation: Operation, params: Params) -> list[MediaInput]:
        """As :meth:`_analyse` and :meth:`_create` choose: URLs in the query when every
        input is one (and no POST-only option is set), else every input uploaded. The
        analyses that take only JPEG and PNG read their picture whatever the reference."""
        refs = list(params.media().values())
        if operation in READERS:
            if _analysis(operation, params)[0] in EVERYPIXEL_PICTURES:
                return refs
            return [ref for ref in refs if ref.url is None]
        post_only = isinstance(params, SwapFace | SwapFaceVideo) and bool(params.enhance_face)
        if refs and not post_only and all(ref.url is not None for ref in refs):
            return []
        return refs

    async def submit(self, call: Call) -> SubmitResult:
        if call.operation in READERS:
            return await self._analyse(call)
        if call.operation in TASKS:
            return await self._create(call)
        return Failed(
            ErrorCode.unsupported_operation, f"{PROVIDER} does not serve {call.operation}"
        )

    # analyses ---------------------------------------------------------------------------------

    async def _analyse(self, call: Call) -> SubmitResult:
        params = call.params
        query: dict[str, str] = {}
        if isinstance(params, ImageKeywords | VideoKeywords):
            if params.num_keywords is not None:
                query["num_keywords"] = str(min(params.num_keywords, MAX_KEYWORDS))
            if params.threshold is not None:
                query["threshold"] = str(params.threshold)
        if isinstance(params, ImageKeywords):
            if params.lang is not None:
                query["lang"] = params.lang
            if params.colors is not None:
                query["colors"] = flag(params.colors)
            if params.num_colors is not None:
                query["num_colors"] = str(params.num_colors)
        if isinstance(params, ImageCaption) and params.caption_len is not None:
            query["caption_len"] = params.caption_len
        endpoint, ref = _analysis(call.operation, params)
        limits = EVERYPIXEL_PICTURES.get(endpoint)

        url = f"{self.base_url}{endpoint}"
        request: dict[str, Any] = {"auth": self._auth(call), "timeout": self.config.timeout_s}
        if ref.url is not None and limits is None:
            query["url"] = call.media.public_url(ref)
            with upstream_errors(PROVIDER):
                response = await self.client.get(url, params=query, **request)
        else:
            if limits is None:
                media = await call.media.read(ref)
            else:
                try:
                    media = await read_conformed(call, ref, limits)
                except UnreadablePicture:
                    message = f"{PROVIDER} {endpoint} takes JPEG or PNG; the image is unreadable"
                    return Failed(ErrorCode.invalid_media, message)
            upload = (_file_name("data", media.content_type), media.content, media.content_type)
            files = {"data": upload}
            with upstream_errors(PROVIDER):
                response = await self.client.post(url, params=query, files=files, **request)
        if (failed := http_failure(response)) is not None:
            return failed
        try:
            return Succeeded(data=READERS[call.operation](json_object(response)))
        except ValidationError as exc:
            raise unreadable(f"{endpoint} answer without its documented fields") from exc

    # tasks ------------------------------------------------------------------------------------

    async def _create(self, call: Call) -> SubmitResult:
        shape = TASKS[call.operation]
        params = call.params
        fields: dict[str, str] = {"title": call.job_id}
        if call.callback_url:
            fields["callback"] = call.callback_url
        if isinstance(params, Speech):
            fields |= {"voice": params.voice, "text": params.text}
            if params.title is not None:  # "Sets the name for the output file"
                fields["title"] = params.title
        if isinstance(params, Lipsync) and params.model is not None:
            fields["model"] = params.model
        post_only = False
        if isinstance(params, SwapFace | SwapFaceVideo) and params.enhance_face is not None:
            fields["use_gfpgan"] = flag(params.enhance_face)
            post_only = params.enhance_face

        refs: list[tuple[str, MediaInput]] = [
            (upstream, getattr(params, canonical)) for canonical, upstream in shape.fields
        ]
        url = f"{self.base_url}{shape.endpoint}"
        request: dict[str, Any] = {"auth": self._auth(call), "timeout": self.config.timeout_s}
        if refs and not post_only and all(ref.url is not None for _, ref in refs):
            query = fields | {f"{name}_url": call.media.public_url(ref) for name, ref in refs}
            with upstream_errors(PROVIDER):
                response = await self.client.get(url, params=query, **request)
        else:
            files: dict[str, tuple[str, bytes, str]] = {}
            for name, ref in refs:
                media = await call.media.read(ref)
                files[name] = (
                    _file_name(name, media.content_type),
                    media.content,
                    media.content_type,
                )
            with upstream_errors(PROVIDER):
                response = await self.client.post(url, data=fields, files=files or None, **request)
        if (failed := http_failure(response)) is not None:
            return failed
        try:
            task = TaskAnswer.model_validate(json_object(response))
        except ValidationError as exc:
            raise unreadable("no task_id") from exc
        return Submitted(task.task_id, poll_after_s=self.config.poll_interval_s)

    async def poll(self, call: Call, provider_job_id: str) -> PollResult:
        with upstream_errors(PROVIDER):
            response = await self.client.get(
                f"{self.base_url}/v1/status",
                params={"task_id": provider_job_id},
                auth=self._auth(call),
                timeout=self.config.timeout_s,
            )
        if (failed := http_failure(response)) is not None:
            if response.status_code == 404:  # "Task not found.": Everypixel's word
                return failed
            return poll_trouble(failed)  # 429, 502 (its rate limit), 401…: read it again
        try:
            task = TaskAnswer.model_validate(json_object(response))
        except ValidationError as exc:
            raise unreadable("no task status") from exc
        meaning = STATUSES.get(task.status)
        if meaning is None:
            log.warning("%s: unknown task status %r; read as running", PROVIDER, task.status)
            meaning = "running"
        if meaning == "running":
            fraction = (
                task.progress if task.progress is not None and 0 <= task.progress <= 1 else None
            )
            return Progress(
                fraction=fraction,
                poll_after_s=self.config.poll_interval_s,
                queue_position=task.queue if task.queue is not None and task.queue >= 0 else None,
                eta_s=task.eta if task.eta is not None and task.eta >= 0 else None,
            )
        if isinstance(meaning, Meaning):
            detail = task.message or (task.result if isinstance(task.result, str) else None)
            meaning = refine(meaning, detail or "")
            return meaning.failed(
                f"{PROVIDER} task {task.status}: {detail or 'no message'}", task.status
            )
        return await self._download(call.operation, result_url(task.result))

    async def _download(self, operation: Operation, url: str) -> Succeeded:
        kind = EXPECTED_MEDIA[operation]
        output = await _http.download(
            self.client, PROVIDER, url, kind=kind, timeout_s=self.config.timeout_s
        )
        return Succeeded(files=[output])

    # catalog ----------------------------------------------------------------------------------

    async def voices(self) -> list[Voice]:
        """``GET /v1/tts/voices`` (free): a list of voices, or the document's single object."""
        with upstream_errors(PROVIDER):
            response = await self.client.get(
                f"{self.base_url}/v1/tts/voices", auth=self._auth(), timeout=self.config.timeout_s
            )
        if (failed := http_failure(response)) is not None:
            raise ProviderUnavailable(failed.message)
        body = json_body(response)
        if isinstance(body, dict):
            body = body.get("voices", [body])
        if not isinstance(body, list):
            raise unreadable("voices are not a list")
        try:
            answers = [VoiceAnswer.model_validate(entry) for entry in body]
        except ValidationError as exc:
            raise unreadable("a voice without api_name") from exc
        return [
            Voice(id=v.api_name, language=v.language, gender=v.gender, age=v.age) for v in answers
        ]


def _analysis(operation: Operation, params: Params) -> tuple[str, MediaInput]:
    """An analysis's endpoint (image.quality's by its model) and its one input."""
    if isinstance(params, ImageQuality):
        return QUALITY_ENDPOINTS[params.model], params.image
    if isinstance(params, VideoKeywords):
        return ANALYSES[operation], params.video
    assert isinstance(params, ImageKeywords | ImageCaption | Faces)
    return ANALYSES[operation], params.image


_EXTENSIONS: Final[Mapping[str, str]] = {"jpeg": "jpg", "mpeg": "mp3", "wave": "wav"}


def _file_name(stem: str, content_type: str) -> str:
    """A multipart file name with the extension of the media type (``source.png``)."""
    subtype = content_type.rpartition("/")[2].removeprefix("x-") or "bin"
    return f"{stem}.{_EXTENSIONS.get(subtype, subtype)}"
