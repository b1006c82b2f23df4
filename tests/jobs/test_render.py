"""``RenderedJobs`` answers exactly what rendering the stored job anew gives, byte for byte:
URLs signed at the time of the read, the job as stored now, and only to its tenant."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.domain.models import (
    Artifact,
    Job,
    JobLinks,
    JobOutput,
    JobRecord,
    JobStatus,
    new_artifact_id,
    new_job_id,
    utcnow,
)
from app.domain.operations import Operation
from app.jobs.render import JobRenderer, RenderedJobs
from app.signing import UrlSigner


def _record(artifacts: int, metadata: dict[str, object] | None = None) -> JobRecord:
    job_id = new_job_id()
    output = JobOutput(
        artifacts=[
            Artifact(id=new_artifact_id(), url="", content_type="image/png", bytes=7 + i)
            for i in range(artifacts)
        ],
        data={"url": "", "note": 'a "quoted" ünïcode \u0001'},
    )
    job = Job(
        id=job_id,
        operation=Operation.image_generate,
        status=JobStatus.succeeded,
        input={"prompt": "x"},
        output=output,
        metadata=metadata or {},
        created_at=utcnow(),
        links=JobLinks(self=f"/v1/jobs/{job_id}", cancel="c", events="e"),
    )
    return JobRecord(job=job, tenant_id="t1", params={}, plan=["imagepig"])


def _fresh(renderer: JobRenderer, body: str) -> str:
    return renderer.job(JobRecord.model_validate_json(body).job).model_dump_json()


@pytest.mark.parametrize("artifacts", [0, 1, 3, 12])
@pytest.mark.parametrize("base_url", ["https://media.example", 'https://m.example/"ü\\'])
def test_a_kept_job_reads_as_rendered_anew(
    artifacts: int, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    renderer = JobRenderer(UrlSigner(b"k" * 32, base_url, 3600))
    rendered = RenderedJobs(renderer)
    body = _record(
        artifacts, {"url": "", "x": "0123456789abcdef0123456789abcdef0."}
    ).model_dump_json()
    job_id = JobRecord.model_validate_json(body).job.id
    for now in (1_000_000.0, 1_000_000.0, 2_000_000.0):  # rendered, kept, signed later
        monkeypatch.setattr("app.signing.time", SimpleNamespace(time=lambda now=now: now))
        assert rendered.json(job_id, body, "t1") == _fresh(renderer, body)


def test_a_kept_job_follows_its_record_and_its_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    # one moment for every signature, so that two renders across a second's turn compare
    monkeypatch.setattr("app.signing.time", SimpleNamespace(time=lambda: 1_000_000.0))
    renderer = JobRenderer(UrlSigner(b"k" * 32, "https://media.example", 3600))
    rendered = RenderedJobs(renderer, size=2)
    record = _record(1)
    job_id = record.job.id
    first = record.model_dump_json()
    assert rendered.json(job_id, first, "t1") is not None
    assert rendered.json(job_id, first, "t2") is None  # another tenant's job: not found
    record.job.status = JobStatus.failed
    changed = record.model_dump_json()
    text = rendered.json(job_id, changed, "t1")
    assert text is not None and '"status":"failed"' in text
    for other in (_record(0), _record(2)):  # the oldest kept goes first
        rendered.json(other.job.id, other.model_dump_json(), "t1")
    assert rendered.json(job_id, changed, "t1") == _fresh(renderer, changed)
