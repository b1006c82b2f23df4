"""The rows of an adapter's mapping table: what an upstream's error means in the gateway's terms,
and where that is written.

Every row cites its source (``_citations``): the line of the provider's document
(``docs/upstream/<name>.txt``) that says it, or the HTTP standard where the document only says
it uses HTTP status codes. An upstream error no row names is :func:`unlisted`:
``upstream_failed``, with the upstream's own code kept on the failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.errors import ErrorCode, ProviderUnavailable
from app.providers._citations import HTTP_5XX, Citation
from app.providers.base import Failed


@dataclass(frozen=True)
class Meaning:
    """What an upstream status, HTTP error or error code means in the gateway's terms."""

    code: ErrorCode
    retryable: bool
    cite: Citation
    raised: bool = False
    """Raised as ``ProviderUnavailable`` (the service failing) rather than returned."""
    retry_after_s: float | None = None
    """A wait the document prescribes when the answer carries none."""

    def failed(
        self, message: str, provider_code: str | None, retry_after_s: float | None = None
    ) -> Failed:
        """This meaning as the adapter's ``Failed`` (or raised, for a server error)."""
        if self.raised:
            raise ProviderUnavailable(message)
        wait = retry_after_s if retry_after_s is not None else self.retry_after_s
        return Failed(
            code=self.code,
            message=message,
            provider_code=provider_code,
            retryable=self.retryable,
            retry_after_s=wait,
        )


UNLISTED_CITATION = Citation("gateway", None, "an upstream error no document names")


def unlisted(*, retryable: bool = False) -> Meaning:
    """An upstream error no row names: ``upstream_failed``, the raw code kept by the caller."""
    return Meaning(ErrorCode.upstream_failed, retryable, UNLISTED_CITATION)


SERVER_ERROR = Meaning(ErrorCode.provider_unavailable, True, HTTP_5XX, raised=True)
"""A 5xx no document names otherwise: the service failing, raised and fallen back from."""
