"""``Idempotency-Key`` records (Stripe's semantics, IETF draft-ietf-httpapi-idempotency-key).

A record is scoped to a tenant and keyed by the SHA-256 of the client's key. The first request
*begins* it (in flight, locked for ``lock_s`` in case its process dies — longer than the
request can run, ``lock_for``); its response is then *completed* into it and kept ``ttl_s``
(24 h). Later requests with the same key get, from one Lua script: the stored response
(:class:`Replay`) when their fingerprint (the caller's hash of method + path + body) matches,
:class:`Mismatch` (422) when it does not — also while the first is running — and
:class:`InFlight` (409) while a matching first request runs. A request that fails before
producing a response *abandons* the record, so the client may retry.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from redis.asyncio import Redis

from app.store import keys
from app.store.scripts import Scripts

LOCK_MARGIN_S = 60.0
"""How much longer than the longest ``Prefer: wait`` a key's first request holds the key: for
the work around the wait (checking and storing the request's media, creating the job, reading
it, storing the response), and room for the POSTs that do not wait (an upload, a cancel's ten
seconds at most for a submission under way)."""


def lock_for(longest_wait_s: float) -> float:
    """How long a key's first request holds it, in seconds: past the longest ``Prefer: wait``
    by ``LOCK_MARGIN_S``. A lock that lapsed while its request still ran would let a retry with
    the same key run it a second time (a second job, a second credit hold)."""
    return longest_wait_s + LOCK_MARGIN_S


@dataclass(frozen=True)
class Began:
    """The key is new: run the request, then ``complete`` (or ``abandon``) it."""


@dataclass(frozen=True)
class Replay:
    """The key's request already ran: answer with its stored response."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Mismatch:
    """The key was used for a different request."""


@dataclass(frozen=True)
class InFlight:
    """The key's first request is still running."""


class IdempotencyStore:
    def __init__(
        self, redis: Redis, scripts: Scripts, *, lock_s: float, ttl_s: float = 86400
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.ttl_ms = _ms(ttl_s)
        self.lock_ms = _ms(lock_s)

    async def begin(
        self, tenant_id: str, key: str, fingerprint: str
    ) -> Began | Replay | Mismatch | InFlight:
        row = await self.scripts.begin_idempotency(
            keys=[_record(tenant_id, key)], args=[fingerprint, self.lock_ms]
        )
        outcome = str(row[0])
        if outcome == "began":
            return Began()
        if outcome == "mismatch":
            return Mismatch()
        if outcome == "in_flight":
            return InFlight()
        status, headers, body = row[1:]
        return Replay(int(status), json.loads(headers), base64.b64decode(body))

    async def complete(
        self,
        tenant_id: str,
        key: str,
        fingerprint: str,
        status: int,
        headers: dict[str, str],
        body: bytes,
    ) -> bool:
        """Store the response for ``ttl_s``. False (nothing stored) when the key has meanwhile
        been taken by a different request or already holds a response."""
        stored = await self.scripts.complete_idempotency(
            keys=[_record(tenant_id, key)],
            args=[
                fingerprint,
                status,
                json.dumps(headers, separators=(",", ":")),
                base64.b64encode(body).decode(),
                self.ttl_ms,
            ],
        )
        return bool(int(stored))

    async def abandon(self, tenant_id: str, key: str) -> bool:
        """Remove the key's in-flight record (never a stored response); True if removed."""
        removed = await self.scripts.abandon_idempotency(keys=[_record(tenant_id, key)])
        return bool(int(removed))


def _record(tenant_id: str, key: str) -> str:
    return keys.idempotency(tenant_id, hashlib.sha256(key.encode()).hexdigest())


def _ms(seconds: float) -> int:
    if seconds <= 0:
        raise ValueError("durations must be positive")
    return max(1, round(seconds * 1000))
