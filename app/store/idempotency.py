"""``Idempotency-Key`` records (Stripe's semantics, IETF draft-ietf-httpapi-idempotency-key).

A record is scoped to a tenant and keyed by the SHA-256 of the client's key. The first request
*begins* it, and its response is then *completed* into it and kept ``ttl_s`` (24 h). Later
requests with the same key get, from one Lua script: the stored response (:class:`Replay`)
when their fingerprint (the caller's hash of method + path + body) matches, :class:`Mismatch`
(422) when it does not — also while the first is running — and :class:`InFlight` (409) while
an attempt of the same request runs.

A record binds its key to one id (:class:`Bound`): the caller's proposal when the key is new,
the same on every later attempt of the request, so the object the request makes (a job, a
batch, a file) is made under that id whichever attempt makes it, and at most once. An attempt
holds the key for ``lock_s`` at most (longer than the request can run, ``lock_for``), in case
its process dies; an attempt that ends without a response *abandons* the key: a request
refused before it made anything frees the key altogether (*forget*); any other ending
(an error whose outcome is unknown, a cancellation) releases it and keeps the binding, and
the next attempt — as a lock that lapsed lets one — is told the object may exist.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
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
    the same key run alongside it: under the same bound id, so the job is still made once, but
    the retry would answer it as it stood rather than wait for the first's answer."""
    return longest_wait_s + LOCK_MARGIN_S


@dataclass(frozen=True)
class Bound:
    """The id a key's request makes its object under, the same for every attempt of it."""

    id: str
    may_exist: bool
    """An earlier attempt ended without a known outcome (it was released, or its lock lapsed):
    the object may have been made under ``id`` already."""


@dataclass(frozen=True)
class Began:
    """This attempt holds the key: run the request, then ``complete`` (or ``abandon``) it."""

    attempt: str
    """This attempt's token: only the attempt holding the key abandons it."""
    bound: Bound | None
    """The id bound to the key (None for a request that makes nothing under one)."""


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
        self, tenant_id: str, key: str, fingerprint: str, bind: str | None = None
    ) -> Began | Replay | Mismatch | InFlight:
        """Begin an attempt of the key's request; ``bind``: the id to bind a new key to (one
        already bound keeps its own)."""
        attempt = os.urandom(12).hex()
        row = await self.scripts.begin_idempotency(
            keys=[_record(tenant_id, key)],
            args=[fingerprint, self.lock_ms, self.ttl_ms, attempt, bind or ""],
        )
        outcome = str(row[0])
        if outcome == "began":
            bound = str(row[1])
            return Began(attempt, Bound(bound, str(row[2]) == "1") if bound else None)
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

    async def abandon(self, tenant_id: str, key: str, attempt: str, *, forget: bool) -> bool:
        """The attempt ``attempt`` ended without a response; True if it still held the key.

        ``forget``: its request was refused before it made anything, and the record is
        removed unless an earlier attempt's outcome is unknown. Otherwise the key is released
        and stays bound (its next attempt runs at once, with ``Bound.may_exist``). A stored
        response is never touched."""
        acted = await self.scripts.abandon_idempotency(
            keys=[_record(tenant_id, key)], args=[attempt, "forget" if forget else "release"]
        )
        return bool(int(acted))


def _record(tenant_id: str, key: str) -> str:
    return keys.idempotency(tenant_id, hashlib.sha256(key.encode()).hexdigest())


def _ms(seconds: float) -> int:
    if seconds <= 0:
        raise ValueError("durations must be positive")
    return max(1, round(seconds * 1000))
