"""Signed, expiring URLs for artifacts and uploaded files (HMAC-SHA256 over id and expiry)."""

from __future__ import annotations

import hashlib
import hmac
import time


class UrlSigner:
    def __init__(self, key: bytes, base_url: str, ttl_s: int) -> None:
        self._key = key
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s

    def _signature(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def sign(self, path: str, *, now: float | None = None) -> str:
        """Absolute URL of ``path`` valid for ``ttl_s`` seconds."""
        expires = int((now or time.time()) + self.ttl_s)
        # what urlencode gives for an integer and a hex digest, without its quoting machinery
        return f"{self.base_url}{path}?expires={expires}&sig={self._signature(path, expires)}"

    def verify(self, path: str, expires: int, signature: str) -> bool:
        """The signature holds and has not expired. A signature that is not ASCII cannot be
        one of ours (hex digits) and is false like any other: ``compare_digest`` refuses to
        compare non-ASCII strings (it raises ``TypeError``)."""
        if expires < time.time() or not signature.isascii():
            return False
        return hmac.compare_digest(self._signature(path, expires), signature)
