"""Perfect Corp sign-in: an RSA-encrypted ``id_token`` buys a 2-hour ``access_token``.

``id_token`` = base64(RSA-PKCS#1 v1.5 encrypt(``client_id=<id>&timestamp=<ms>``)) under the
client secret, which is an X.509 SubjectPublicKeyInfo key in base64 DER. ``POST
/s2s/v1.0/client/auth`` with ``{"client_id", "id_token"}`` answers
``{"status": 200, "result": {"access_token": …}}``.

Tokens are shared by every process through :class:`~app.providers.base.AdapterState`, one key
per credential, kept ``TOKEN_TTL_S`` (the 2 h lifetime minus a margin, so no process uses one
about to expire). One process signs in at a time: it holds a short lock key (``only_new``)
while the others wait for the token to appear, so N workers starting together sign in once.
After a 401, the caller asks again naming the token that failed (``stale``): whoever holds the
lock replaces it, the others pick up the replacement.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
import uuid
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from app.domain.errors import ErrorCode
from app.providers._http import upstream_errors
from app.providers.base import AdapterState, Credential, Failed
from app.providers.perfectcorp_wire import AUTH_PATH, PROVIDER, read_http_error, result_object

TOKEN_LIFETIME_S = 2 * 3600.0
"""The document: "The access token valid for 2 hours"."""
TOKEN_MARGIN_S = 10 * 60.0
TOKEN_TTL_S = TOKEN_LIFETIME_S - TOKEN_MARGIN_S
LOCK_TTL_S = 15.0
"""How long one process may take to sign in before another may try."""
WAIT_STEP_S = 0.05


class Refused(Exception):
    """The upstream refused a request; ``failed`` is what the adapter answers."""

    def __init__(self, failed: Failed) -> None:
        super().__init__(failed.message)
        self.failed = failed


@dataclass(frozen=True)
class Account:
    """One credential, ready to sign in with."""

    client_id: str
    public_key: RSAPublicKey = field(repr=False)

    @property
    def key(self) -> str:
        """Names this credential in state keys (a digest: the id is not logged either)."""
        return hashlib.sha256(self.client_id.encode()).hexdigest()[:16]


def account(credential: Credential) -> Account:
    """The credential's client id and public key; :class:`Refused` when unusable."""
    if not credential.client_id or not credential.client_secret:
        raise Refused(_auth_failed("the credential needs client_id and client_secret"))
    try:
        key = load_der_public_key(base64.b64decode(credential.client_secret, validate=True))
    except (ValueError, binascii.Error):
        key = None
    if not isinstance(key, RSAPublicKey):
        raise Refused(_auth_failed("client_secret is not a base64 X.509 RSA public key"))
    return Account(credential.client_id, key)


def id_token(account: Account, timestamp_ms: int | None = None) -> str:
    when = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    plain = f"client_id={account.client_id}&timestamp={when}".encode()
    return base64.b64encode(account.public_key.encrypt(plain, padding.PKCS1v15())).decode()


def _auth_failed(message: str, provider_code: str | None = None) -> Failed:
    return Failed(
        ErrorCode.provider_auth_failed,
        f"{PROVIDER} sign-in failed: {message}",
        provider_code=provider_code,
        retryable=True,
    )


class Tokens:
    """Access tokens of every credential, shared across processes."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, state: AdapterState, timeout_s: float
    ) -> None:
        self.client = client
        self.url = f"{base_url}{AUTH_PATH}"
        self.state = state
        self.timeout_s = timeout_s

    async def get(self, account: Account, stale: str | None = None) -> str:
        """A token for ``account`` other than ``stale``, signing in when none is shared."""
        token_key, lock_key = f"token:{account.key}", f"token-lock:{account.key}"
        deadline = time.monotonic() + 2 * LOCK_TTL_S
        owner = uuid.uuid4().hex
        while True:
            cached = await self.state.get(token_key)
            if cached and cached != stale:
                return cached
            if time.monotonic() > deadline or await self.state.put(
                lock_key, owner, LOCK_TTL_S, only_new=True
            ):
                break
            await asyncio.sleep(WAIT_STEP_S)
        try:
            cached = await self.state.get(token_key)
            if cached and cached != stale:
                return cached
            token = await self._sign_in(account)
            await self.state.put(token_key, token, TOKEN_TTL_S)
            return token
        finally:
            if await self.state.get(lock_key) == owner:
                await self.state.put(lock_key, "", 0.001)

    async def _sign_in(self, account: Account) -> str:
        body = {"client_id": account.client_id, "id_token": id_token(account)}
        with upstream_errors(PROVIDER):
            response = await self.client.post(self.url, json=body, timeout=self.timeout_s)
        if response.status_code >= 300:
            error = read_http_error(response)
            if error.meaning.code is ErrorCode.provider_rate_limited:
                raise Refused(
                    Failed(
                        error.meaning.code,
                        f"{PROVIDER} sign-in HTTP {response.status_code}: {error.message}",
                        provider_code=error.provider_code,
                        retryable=True,
                        retry_after_s=error.retry_after_s,
                    )
                )
            message = f"HTTP {response.status_code}: {error.message}"
            raise Refused(_auth_failed(message, error.provider_code))
        token = result_object(response).get("access_token")
        if not isinstance(token, str) or not token:
            raise Refused(_auth_failed("the answer carries no access_token"))
        return token
