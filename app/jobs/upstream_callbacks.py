"""Inbound upstream callbacks: the URL an upstream POSTs to when its task ends, and what the
gateway does when one arrives (docs/resilience.md).

Everypixel (``callback``) and ImagePipeline (``callback_url``) can notify a URL when a task
ends. With callbacks on (``Settings.upstream_callbacks_on``), the runner gives every
submission to a provider whose adapter ``takes_callbacks`` the URL
``<public_base_url>/v1/providers/<provider>/callbacks/<token>`` (:meth:`UpstreamCallbacks.url`).

- **Token.** ``<job_id>.<mac>``: the first 16 bytes of HMAC-SHA256 under the gateway's signing
  key over ``upstream-callback``, the provider and the job id, base64url without padding (22
  characters, 128 bits). Stateless (nothing is stored per job), unguessable without the key,
  bound to one provider and one job (an Everypixel token does not open the ImagePipeline
  route), compared in constant time. It does not expire: it is worth something only while its
  job waits for that upstream.
- **Trust.** The body is never read for an outcome: whoever holds the URL could send any body.
  A callback only makes the job due now (``JobStore.expedite``), so the worker's next step polls
  the upstream's status and applies what *that* answer says — the same verification as without
  callbacks, only sooner. That poll still waits for the provider's upstream budget, so a
  replayed or chatty callback costs at most polls the budget allows.
- **Answers** (``app/api/routes/upstream_callbacks.py``): a token that does not verify, or a
  provider that takes no callbacks → 404 ``not_found``, never saying whether the job exists; a
  body over :data:`MAX_BODY_BYTES` → 413 ``payload_too_large``; else 202 ``{"received": true}``,
  also for a job that is finished, gone or being worked on, so the upstream stops retrying.
- **A callback during a step.** A job a worker holds sits in the lease set, not the due-queue,
  and is left alone (a running step must not be raced). A callback landing then — an upstream
  that ends its task before the gateway has even saved the submission — is lost, and the job
  is polled at its poll interval, as without callbacks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from enum import StrEnum

from app.store.jobs import JobStore

CallbackUrl = Callable[[str, str], str | None]
"""(provider, job id) → the callback URL an upstream is given for that job (None: the
provider takes none)."""

PATH = "/v1/providers/{provider}/callbacks/{token}"
MAX_BODY_BYTES = 64 * 1024
"""Largest callback body accepted (the documented ones are well under 1 KiB)."""
MAC_BYTES = 16
_DOMAIN = b"upstream-callback"
_TOKEN = re.compile(r"^(job_[A-Za-z0-9]{1,64})\.([A-Za-z0-9_-]{22})$")
OTHER_PROVIDER = "other"
"""Metric label of a callback to a name that is not a provider taking callbacks."""


class CallbackOutcome(StrEnum):
    """What became of one callback (``mediagate_upstream_callbacks_total{outcome}``)."""

    expedited = "expedited"
    """The job was waiting in the due-queue for a later poll; it is due now."""
    ignored = "ignored"
    """A valid token, but the job was not waiting for later: being worked on, already due,
    finished or gone."""
    rejected = "rejected"
    """The token did not verify for this provider (404)."""
    too_large = "too_large"
    """A valid token with a body over :data:`MAX_BODY_BYTES` (413)."""


class CallbackTokens:
    """Mints and verifies the per-job tokens of the callback URLs."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, provider: str, job_id: str) -> str:
        message = b"\n".join((_DOMAIN, provider.encode(), job_id.encode()))
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:MAC_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def mint(self, provider: str, job_id: str) -> str:
        return f"{job_id}.{self._mac(provider, job_id)}"

    def verify(self, provider: str, token: str) -> str | None:
        """The job id the token was minted for at ``provider``; None when it was not."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        job_id, mac = match.groups()
        expected = self._mac(provider, job_id)
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            return None
        return job_id


class UpstreamCallbacks:
    """Callback URLs for the runner; receiving a callback for the API route."""

    def __init__(
        self, tokens: CallbackTokens, store: JobStore, base_url: str, providers: Iterable[str]
    ) -> None:
        self.tokens = tokens
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.providers = frozenset(providers)
        """The providers whose adapters take callbacks; others have no callback route."""

    def url(self, provider: str, job_id: str) -> str | None:
        """The callback URL of ``job_id`` at ``provider``; None when it takes no callbacks."""
        if provider not in self.providers:
            return None
        token = self.tokens.mint(provider, job_id)
        return self.base_url + PATH.format(provider=provider, token=token)

    def verify(self, provider: str, token: str) -> str | None:
        """The job a callback is for, or None (unknown provider, bad or foreign token)."""
        if provider not in self.providers:
            return None
        return self.tokens.verify(provider, token)

    def label(self, provider: str) -> str:
        """``provider`` as a metric label: bounded to the providers taking callbacks."""
        return provider if provider in self.providers else OTHER_PROVIDER

    async def receive(self, job_id: str) -> CallbackOutcome:
        """A verified callback for ``job_id``: make the job due now when it waits for later."""
        if await self.store.expedite(job_id):
            return CallbackOutcome.expedited
        return CallbackOutcome.ignored
