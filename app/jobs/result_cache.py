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
Otherwise an entry serves for the tenant's window (``result_cache_ttl_s``, the gateway's
default ``MEDIAGATE_RESULT_CACHE_TTL_S``; 0 turns the cache off for the tenant).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from app.domain.operations import PARAMS, Operation, Params

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
