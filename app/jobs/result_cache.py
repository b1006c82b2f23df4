"""The result cache: the same work asked twice is served from the first job's result.

**The key.** A SHA-256 over the tenant, the operation, the parameters in canonical form (JSON
with sorted keys, only those the client gave), every media input by the SHA-256 of its bytes,
and the provider when the client chose one (``provider`` and ``fallback``). Entries are the
tenant's own: another tenant's identical request is a miss.

**What is cached.** Requests whose media the gateway holds when the request arrives (inline
``data`` and uploaded ``file_id``). Media by ``url`` are fetched only when the job runs, so their
bytes are unknown at the door: such requests are never served from the cache (a URL's content
may change; the careful side). Operations that generate from a prompt vary from run to run by
design: they are cached only with a ``seed`` given, or when the request asks for it with
``Cache-Control: max-age=N``.

**The request's say.** ``Cache-Control: no-cache`` skips the lookup (the fresh result is still
remembered), ``no-store`` skips both, ``max-age=N`` accepts a result at most ``N`` seconds old.
Otherwise an entry serves for the tenant's window (``result_cache_ttl_s``, else the gateway's
``MEDIAGATE_RESULT_CACHE_TTL_S``). The gateway's default is 0, off: serving an earlier result
is something a deployment or a tenant chooses, not something a client meets by surprise.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from app.blobs import BlobStore
from app.domain.models import Job, JobRecord, JobStatus
from app.domain.operations import PARAMS, Operation, Params
from app.metrics import Metrics
from app.store.jobs import JobStore, now_ms
from app.store.result_cache import ResultCacheStore
from app.store.tenants import Tenant

GENERATIVE = frozenset(
    op
    for op, model in PARAMS.items()
    if "prompt" in model.model_fields and model.model_fields["prompt"].is_required()
)
"""Operations that create from a prompt: their results differ run to run without a seed."""

_DIRECTIVE = re.compile(r"\s*([a-zA-Z-]+)\s*(?:=\s*\"?(\d{1,9})\"?)?\s*")


@dataclass(frozen=True)
class CachePolicy:
    """What one request allows: look up, remember, and how old a served result may be."""

    lookup: bool = True
    store: bool = True
    max_age_s: int | None = None
    """Asked with ``max-age``: also opts a generative operation in."""

    @classmethod
    def from_header(cls, value: str | None) -> CachePolicy:
        """Read ``Cache-Control``; unknown directives are ignored, as HTTP caches do."""
        if not value:
            return cls()
        lookup, store, max_age = True, True, None
        for part in value.split(","):
            match = _DIRECTIVE.fullmatch(part)
            if match is None:
                continue
            name, number = match.group(1).lower(), match.group(2)
            if name == "no-cache":
                lookup = False
            elif name == "no-store":
                lookup = store = False
            elif name == "max-age" and number is not None:
                max_age = int(number)
        return cls(lookup, store, max_age)

    def window_s(self, tenant_ttl_s: int) -> int:
        """How old a served result may be: the tenant's window, narrowed by ``max-age``."""
        if tenant_ttl_s <= 0:
            return 0
        return tenant_ttl_s if self.max_age_s is None else min(self.max_age_s, tenant_ttl_s)


def cacheable(operation: Operation, params: Params, policy: CachePolicy) -> bool:
    """Whether results of this request may be looked up and remembered at all."""
    if not (policy.lookup or policy.store):
        return False
    if any(ref.url is not None for ref in params.media().values()):
        return False  # bytes unknown until the job runs
    if operation in GENERATIVE and getattr(params, "seed", None) is None:
        return policy.max_age_s is not None
    return True


def cache_key(
    tenant_id: str,
    operation: Operation,
    params: Params,
    digests: dict[str, str],
    providers: list[str] | None,
) -> str:
    """The entry's key: see the module docstring. ``digests`` maps each media field to the
    SHA-256 of its bytes; ``providers`` is the client's own choice, if any."""
    canonical = params.model_dump(mode="json", exclude_unset=True)
    for name in params.media():
        canonical[name] = {"sha256": digests[name]}
    material = json.dumps(
        {
            "tenant": tenant_id,
            "operation": operation.value,
            "params": canonical,
            "providers": providers,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class CacheDecision:
    """What the cache says of one request: the job to serve again, or the key to remember the
    new job's result under (``None``: not cached at all)."""

    key: str | None = None
    ttl_s: int = 0
    hit: Job | None = None


class ResultCache:
    """Looks requests up at submission and remembers results as jobs succeed."""

    def __init__(
        self,
        store: ResultCacheStore,
        jobs: JobStore,
        blobs: BlobStore,
        metrics: Metrics,
        *,
        default_ttl_s: int,
        default_hit_percent: int,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.blobs = blobs
        self.metrics = metrics
        self.default_ttl_s = default_ttl_s
        self.default_hit_percent = default_hit_percent

    def hit_price(self, tenant: Tenant, source: Job) -> int:
        """What serving ``source`` again costs: a share of what it was charged."""
        percent = tenant.cache_hit_percent
        percent = self.default_hit_percent if percent is None else percent
        return math.ceil(source.credits.charged * percent / 100)

    async def consider(
        self,
        tenant: Tenant,
        operation: Operation,
        params: Params,
        chosen: list[str] | None,
        inline: Mapping[str, bytes],
        cache_control: str | None,
    ) -> CacheDecision:
        """Look the request up (``inline``: the bytes of its media given as data)."""
        policy = CachePolicy.from_header(cache_control)
        ttl = tenant.result_cache_ttl_s
        ttl = self.default_ttl_s if ttl is None else ttl
        window = policy.window_s(ttl)
        if window <= 0 or not cacheable(operation, params, policy):
            return CacheDecision()
        digests = await self._digests(params, inline)
        if digests is None:
            return CacheDecision()
        key = cache_key(tenant.id, operation, params, digests, chosen)
        if policy.lookup:
            source = await self._lookup(tenant.id, key, window)
            if source is not None:
                self.metrics.cache_lookup(operation.value, hit=True)
                upstream = sum(a.upstream_cost or 0 for a in source.attempts)
                self.metrics.cache_saved(operation.value, upstream)
                return CacheDecision(hit=source)
            self.metrics.cache_lookup(operation.value, hit=False)
        return CacheDecision(key=key if policy.store else None, ttl_s=ttl)

    async def remember(self, record: JobRecord) -> None:
        """After a job succeeded: its result serves the same request for the window."""
        if record.cache_key is None or record.cache_ttl_s <= 0:
            return
        await self.store.remember(
            record.tenant_id, record.cache_key, record.job.id, record.cache_ttl_s
        )

    async def _lookup(self, tenant_id: str, key: str, window_s: int) -> Job | None:
        found = await self.store.lookup(tenant_id, key)
        if found is None:
            return None
        job_id, stored_ms = found
        if now_ms() - stored_ms > window_s * 1000:
            return None  # older than this request accepts
        stored = await self.jobs.get(job_id)
        if stored is None or stored.record.tenant_id != tenant_id:
            return None
        job = stored.record.job
        return job if job.status is JobStatus.succeeded and job.output is not None else None

    async def _digests(self, params: Params, inline: Mapping[str, bytes]) -> dict[str, str] | None:
        digests = {}
        for name, ref in params.media().items():
            content = inline.get(name)
            stored = ref.file_id or ref.artifact_id
            if content is None and stored is not None:
                content = await self.blobs.get(stored)
            if content is None:
                return None
            digests[name] = hashlib.sha256(content).hexdigest()
        return digests
