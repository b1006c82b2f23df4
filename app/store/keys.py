"""Every Redis key and channel name the gateway uses, in one place.

Keys of one job share the job id, keys of one tenant the tenant id. The due-queue and the
lease set are global sorted sets; the Lua scripts that touch a job and the queues together
name all their keys in ``KEYS`` so they stay correct on one Redis (Sentinel). A Redis Cluster
deployment would shard the queues per hash tag; see docs/scale-out.md.
"""

PREFIX = "mg:"

DUE = f"{PREFIX}due"
"""ZSET job id → epoch ms when a worker should next look at it (submit, poll, retry)."""

LEASES = f"{PREFIX}leases"
"""ZSET job id → epoch ms when the current worker's lease on it expires."""

WEBHOOKS_DUE = f"{PREFIX}webhooks-due"
"""ZSET job id → epoch ms when its webhook delivery is next due (or its sender's lease ends)."""

BATCHES_DUE = f"{PREFIX}batches-due"
"""ZSET batch id → epoch ms when a driver should next advance it (or its driver's lease ends)."""

WORKERS = f"{PREFIX}workers"
"""ZSET worker id → epoch ms of its last heartbeat."""


CACHE_INVALIDATIONS = f"{PREFIX}cache-invalidations"
"""Pub/sub channel: a key was revoked, a tenant changed, prices changed; drop caches."""

PRICES = f"{PREFIX}prices"
"""HASH ``<operation>|<provider>`` → a price rule (JSON; a bare integer is a flat price): the
overrides set through the admin API."""

SPEND = f"{PREFIX}spend"
"""STREAM, one entry per finished job (``job_id``, ``charged``, ``record`` JSON): what its
upstream tasks cost and what the tenant was charged, appended by the terminal save."""

SEEDED = f"{PREFIX}seeded"
"""HASH of one-time seeds already applied (the sandbox tenant's credits)."""

TENANTS = f"{PREFIX}tenants"
"""ZSET tenant id → creation epoch s."""


def key_id(key_id: str) -> str:
    """STRING: the SHA-256 of the API key with this public id (for revocation)."""
    return f"{PREFIX}keyid:{key_id}"


def job(job_id: str) -> str:
    """HASH: ``body`` (JobRecord JSON), ``version``, ``status``, ``tenant``, ``lease`` token;
    ``awaiting`` on a job canceled while its submission was under way, until the upstream's
    answer is recorded (``lua/cancel_under_way.lua``)."""
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


# Credits, limits and idempotency. Keys of one tenant carry the tenant id as a hash tag
# (``{tenant}``) so the Lua scripts that touch several of them stay single-slot (docs/scale-out.md).


def credit_account(tenant_id: str) -> str:
    """HASH: ``balance`` and ``reserved`` credits (integers); available = balance - reserved."""
    return f"{PREFIX}credits:{{{tenant_id}}}"


def credit_hold(tenant_id: str, job_id: str) -> str:
    """HASH: ``amount`` held for one job, ``state`` (held | charged | released), ``charged``."""
    return f"{PREFIX}credits:{{{tenant_id}}}:hold:{job_id}"


def credit_holds(tenant_id: str) -> str:
    """SET of the job ids with an open hold (their amounts sum to the account's ``reserved``)."""
    return f"{PREFIX}credits:{{{tenant_id}}}:holds"


def credit_ledger(tenant_id: str) -> str:
    """STREAM, append-only: one entry per credit movement (grant, debit, reserve, adjust, …)."""
    return f"{PREFIX}credits:{{{tenant_id}}}:ledger"


def credit_hold_keys(tenant_id: str, job_id: str) -> list[str]:
    """The keys every script that reserves or settles a job's hold takes, in this order."""
    return [
        credit_account(tenant_id),
        credit_hold(tenant_id, job_id),
        credit_holds(tenant_id),
        credit_ledger(tenant_id),
    ]


def rate_limit(key: str) -> str:
    """STRING: the GCRA theoretical arrival time (µs since the epoch, Redis clock)."""
    return f"{PREFIX}rl:{key}"


def idempotency(tenant_id: str, key_digest: str) -> str:
    """HASH: ``state`` (in_flight | done), ``fingerprint``, and once done the stored response
    (``status``, ``headers`` JSON, ``body`` base64). ``key_digest`` is the SHA-256 of the
    client's ``Idempotency-Key``, so any key the client sends makes a well-formed Redis key."""
    return f"{PREFIX}idem:{{{tenant_id}}}:{key_digest}"


def tenant_job_slots(tenant_id: str) -> str:
    """ZSET job id → expiry: the tenant's unfinished jobs (its concurrent-jobs limit)."""
    return f"{PREFIX}slots:tenant-jobs:{{{tenant_id}}}"


def adapter_state(provider: str, key: str) -> str:
    """STRING: a value an adapter shares across processes (a token, a request id)."""
    return f"{PREFIX}adapter:{provider}:{key}"


def upstream_schedule(provider: str, limit: str, credential: int) -> str:
    """STRING: ms (Redis clock) at which the credential's next request under ``limit`` may go."""
    return f"{PREFIX}upstream:{provider}:{limit}:{credential}:next"


def upstream_jobs(provider: str, limit: str, credential: int) -> str:
    """ZSET job id → ms its slot among the credential's job slots lapses unless renewed."""
    return f"{PREFIX}upstream:{provider}:{limit}:{credential}:jobs"


def upstream_waiting(provider: str, limit: str) -> str:
    """ZSET job id → ms it began waiting for one of the budget's job slots: the gateway's
    own queue in front of the upstream, served in that order."""
    return f"{PREFIX}upstream:{provider}:{limit}:waiting"


def upstream_waiting_seen(provider: str, limit: str) -> str:
    """ZSET job id → ms it last asked for a slot (a waiter that stops asking lapses)."""
    return f"{PREFIX}upstream:{provider}:{limit}:waiting-seen"


def upstream_egress_schedule(provider: str) -> str:
    """STRING: ms (Redis clock) at which the next request from this egress address to
    ``provider`` may go, whatever the credential (per-IP limits)."""
    return f"{PREFIX}upstream:{provider}:egress:next"


def upstream_egress_jobs(provider: str) -> str:
    """ZSET job id → ms its slot among the provider's egress-wide job slots lapses."""
    return f"{PREFIX}upstream:{provider}:egress:jobs"


def catalog(kind: str, provider: str, query: str) -> str:
    """STRING (JSON, expiring): an upstream's styles or voices answer, reused for a while."""
    return f"{PREFIX}catalog:{kind}:{provider}:{query}"


def circuit(provider: str) -> str:
    """HASH: a provider's breaker — ``state``, ``opened_at``, the half-open ``probe``."""
    return f"{PREFIX}circuit:{provider}"


def circuit_outcomes(provider: str) -> str:
    """HASH ``<time bucket>:ok|fail`` → count: the breaker's sliding window."""
    return f"{PREFIX}circuit:{provider}:outcomes"


def webhook_deliveries(job_id: str) -> str:
    """LIST of JSON delivery attempts of a job's webhook, oldest first."""
    return f"{PREFIX}job:{job_id}:deliveries"


def webhook_secret(tenant_id: str) -> str:
    """STRING ``whsec_…``: the tenant's webhook signing secret (Standard Webhooks)."""
    return f"{PREFIX}tenant:{tenant_id}:webhook-secret"


def batch(batch_id: str) -> str:
    """HASH: tenant, operation, status, counters (``next``, ``running``, ``succeeded``,
    ``failed``, ``canceled``), ``starting`` (``<index>:<job id>``), metadata, callback."""
    return f"{PREFIX}batch:{batch_id}"


def batch_items(batch_id: str) -> str:
    """LIST: the items' request bodies (JSON), in order."""
    return f"{PREFIX}batch:{batch_id}:items"


def batch_results(batch_id: str) -> str:
    """HASH item index → ``{"job_id"}``, or ``{"status", "error"}`` for one never started."""
    return f"{PREFIX}batch:{batch_id}:results"


def batch_open(batch_id: str) -> str:
    """SET: ids of the batch's jobs that have not been counted as ended."""
    return f"{PREFIX}batch:{batch_id}:open"


BLOB_EXPIRIES = f"{PREFIX}blob-expiries"
"""ZSET ``<blob id>|<bytes>|<tenant>`` → epoch ms when the blob's retention ends (while a
sweeper holds it: when its claim lapses). Every stored file and output has one entry."""


def storage_used(tenant_id: str) -> str:
    """STRING: bytes of files and outputs the tenant keeps (its storage quota's count)."""
    return f"{PREFIX}storage:{{{tenant_id}}}:used"


def concurrency_slots(key: str) -> str:
    """ZSET holder id → epoch ms when its slot expires unless re-acquired."""
    return f"{PREFIX}slots:{key}"


def result_cache(tenant_id: str, key: str) -> str:
    """STRING ``<job id> <epoch ms>``: the job whose result answers the request ``key`` (a
    SHA-256, see ``app/jobs/result_cache.py``); expires with the tenant's window."""
    return f"{PREFIX}cache:{tenant_id}:{key}"
