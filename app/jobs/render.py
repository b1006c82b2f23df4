"""The one way a stored job becomes the job a client reads.

``GET /v1/jobs``, ``GET /v1/jobs/{id}``, the SSE stream and outbound webhook payloads all show
the job through :class:`JobRenderer`, so they carry the same fields; artifact URLs are signed
at the moment of rendering (a signature expires; the stored record keeps none).
"""

from __future__ import annotations

from app.domain.models import Job, JobRecord
from app.signing import UrlSigner


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
            artifact.model_copy(update={"url": self.signer.sign(f"/v1/artifacts/{artifact.id}")})
            for artifact in job.output.artifacts
        ]
        output = job.output.model_copy(update={"artifacts": artifacts})
        return job.model_copy(update={"output": output})

    def record(self, record: JobRecord) -> Job:
        return self.job(record.job)
