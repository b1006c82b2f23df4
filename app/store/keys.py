"""Every Redis key and channel name the gateway uses, in one place.

Keys of one job share the job id, keys of one tenant the tenant id. The due-queue and the
lease set are global sorted sets; the Lua scripts that touch a job and the queues together
name all their keys in ``KEYS`` so they stay correct on one Redis (Sentinel). A Redis Cluster
deployment would shard the queues per hash tag; see DESIGN §4.
"""

PREFIX = "mg:"

DUE = f"{PREFIX}due"
"""ZSET job id → epoch ms when a worker should next look at it (submit, poll, retry)."""

LEASES = f"{PREFIX}leases"
"""ZSET job id → epoch ms when the current worker's lease on it expires."""

WORKERS = f"{PREFIX}workers"
"""ZSET worker id → epoch ms of its last heartbeat."""


AUTH_CHANGES = f"{PREFIX}auth-changes"
"""Pub/sub channel: a key was revoked or a tenant suspended; processes drop cached keys."""


def job(job_id: str) -> str:
    """HASH: ``body`` (JobRecord JSON), ``version``, ``status``, ``tenant``, ``lease`` token."""
    return f"{PREFIX}job:{job_id}"


def job_events(job_id: str) -> str:
    """Pub/sub channel of a job's status changes (payload: the status)."""
    return f"{PREFIX}events:{job_id}"


def tenant_jobs(tenant_id: str) -> str:
    """ZSET job id → creation epoch ms, newest last; ids of expired jobs are pruned lazily."""
    return f"{PREFIX}tenant:{tenant_id}:jobs"


def tenant(tenant_id: str) -> str:
    """HASH: ``name``, ``status`` (active | suspended), ``created_at``."""
    return f"{PREFIX}tenant:{tenant_id}"


def api_key(key_hash: str) -> str:
    """HASH: ``tenant``, ``key_id`` — the key itself is never stored, only its SHA-256."""
    return f"{PREFIX}apikey:{key_hash}"


def file(file_id: str) -> str:
    """JSON (BlobMeta) of an upload: owner, content type, size, dimensions."""
    return f"{PREFIX}file:{file_id}"


def artifact(artifact_id: str) -> str:
    """JSON (BlobMeta) of a stored output."""
    return f"{PREFIX}artifact:{artifact_id}"
