"""The one way a stored job becomes the job a client reads.

``GET /v1/jobs``, ``GET /v1/jobs/{id}``, the SSE stream and outbound webhook payloads all show
the job through :class:`JobRenderer`, so they carry the same fields; artifact URLs are signed
at the moment of rendering (a signature expires; the stored record keeps none).

:class:`RenderedJobs` keeps, per process, the JSON of the jobs read lately, cut where their
artifact URLs go: a job read again unchanged (its stored body the same, byte for byte) is
answered without parsing its record or serializing it again, its URLs signed anew into the
same bytes :meth:`JobRenderer.job` would give.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from app.domain.models import Job, JobRecord
from app.signing import UrlSigner

RENDERED_JOBS = 2048
"""How many jobs' rendered JSON a process keeps (the oldest goes first): the jobs clients
poll now, within a few MB."""

_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f-\U0010ffff]*')
"""A string JSON writes as it is (no escape, ASCII): a signed URL normally is."""


class JobRenderer:
    def __init__(self, signer: UrlSigner) -> None:
        self.signer = signer

    def job(self, job: Job) -> Job:
        """A copy of the job with every artifact URL signed now."""
        if job.output is None or not job.output.artifacts:
            return job
        # Copies of the job, its output and its artifacts only (the rest is shared, and a
        # rendered job is only ever serialized): a deep copy of the whole job cost more
        # than the rest of a GET's Python work together (bench.cpu).
        artifacts = [
            artifact.model_copy(update={"url": self.signer.sign(_path(artifact.id))})
            for artifact in job.output.artifacts
        ]
        output = job.output.model_copy(update={"artifacts": artifacts})
        return job.model_copy(update={"output": output})

    def record(self, record: JobRecord) -> Job:
        return self.job(record.job)


@dataclass(frozen=True)
class _Rendered:
    body: str
    """The stored record it was rendered from."""
    tenant_id: str
    pieces: tuple[str, ...]
    """The job's JSON, cut where each artifact's URL goes (one piece more than URLs)."""
    paths: tuple[str, ...]
    """The path each URL signs, in order."""


class RenderedJobs:
    """The JSON a client reads of a stored job (``JobRenderer.job`` serialized), kept for the
    last ``RENDERED_JOBS`` jobs read in this process; see the module docstring."""

    def __init__(self, renderer: JobRenderer, size: int = RENDERED_JOBS) -> None:
        self.renderer = renderer
        self.size = size
        self._kept: dict[str, _Rendered] = {}

    def json(self, job_id: str, body: str, tenant_id: str) -> str | None:
        """The job stored as ``body`` as ``tenant_id`` reads it; None if it is not theirs."""
        kept = self._kept.get(job_id)
        if kept is None or kept.body != body:
            record = JobRecord.model_validate_json(body)
            kept = _cut(body, record)
            self._kept.pop(job_id, None)
            self._kept[job_id] = kept
            if len(self._kept) > self.size:
                del self._kept[next(iter(self._kept))]
        if kept.tenant_id != tenant_id:
            return None
        if not kept.paths:
            return kept.pieces[0]
        urls = [self.renderer.signer.sign(path) for path in kept.paths]
        if not all(_PLAIN.fullmatch(url) for url in urls):  # written escaped: as the model does
            return self.renderer.job(JobRecord.model_validate_json(body).job).model_dump_json()
        parts = [kept.pieces[0]]
        for url, piece in zip(urls, kept.pieces[1:], strict=True):
            parts += (url, piece)
        return "".join(parts)


def _cut(body: str, record: JobRecord) -> _Rendered:
    """The job's JSON with each artifact URL's place marked by a random token (which no
    stored text can hold, made after it), cut at the marks."""
    job = record.job
    if job.output is None or not job.output.artifacts:
        return _Rendered(body, record.tenant_id, (job.model_dump_json(),), ())
    mark = secrets.token_hex(16)
    artifacts = [
        artifact.model_copy(update={"url": f"{mark}{i}."})
        for i, artifact in enumerate(job.output.artifacts)
    ]
    output = job.output.model_copy(update={"artifacts": artifacts})
    text = job.model_copy(update={"output": output}).model_dump_json()
    pieces = re.split(f"{mark}[0-9]+\\.", text)
    paths = tuple(_path(artifact.id) for artifact in artifacts)
    assert len(pieces) == len(paths) + 1
    return _Rendered(body, record.tenant_id, tuple(pieces), paths)


def _path(artifact_id: str) -> str:
    return f"/v1/artifacts/{artifact_id}"
