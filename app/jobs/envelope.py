"""What a job request carries besides the operation's parameters (the envelope), and the
options a route adds from its headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from app.domain.json_values import METADATA_MAX_BYTES, METADATA_MAX_DEPTH, METADATA_MAX_KEYS
from app.domain.models import DEFAULT_WEBHOOK_EVENTS, WebhookEvent
from app.domain.operations import Params
from app.store.rate_limits import RateCheck
from app.store.tenants import Tenant


class Envelope(BaseModel):
    """What every operation request carries besides its parameters."""

    provider: str | None = Field(default=None, description="First choice; alone, it pins.")
    fallback: list[str] | Literal[False] | None = Field(
        default=None, description="Next choices in order, or false for none."
    )
    callback_url: str | None = Field(default=None, max_length=2048)
    webhook_events: list[WebhookEvent] | None = Field(
        default=None,
        min_length=1,
        max_length=len(WebhookEvent),
        description="The events `callback_url` is sent: `job.started`, `job.progress`, "
        "`job.succeeded`, `job.failed`, `job.canceled`. Default: the tenant's choice, else "
        "the three that end a job.",
    )
    metadata: dict[str, object] = Field(
        default_factory=dict,
        description=f"Yours, kept with the job and given back unchanged: at most "
        f"{METADATA_MAX_BYTES} bytes as JSON, {METADATA_MAX_DEPTH} levels deep and "
        f"{METADATA_MAX_KEYS} keys in all; finite numbers only.",
    )


@dataclass(frozen=True)
class JobOptions:
    """How a job is to be made, beyond its body: from the route's headers, or a batch."""

    job_id: str | None = None
    """The id to create it with (never created twice: when a job with it exists, the
    submission answers that job as it stands, if it is the tenant's)."""
    may_exist: bool = False
    """The job may exist already under ``job_id``, made by an earlier attempt of the same
    request whose outcome is unknown (an ``Idempotency-Key``'s binding): it is looked for
    first, and answered as it stands when found."""
    cancel_after_s: float | None = None
    """``Cancel-After``: still unfinished that long after its creation, it is canceled."""
    cache_control: str | None = None
    """``Cache-Control``: what the result cache may do for it."""
    rate: RateCheck | None = None
    """The request's rate check, left to the job's creation (one round trip for both)."""

    def chosen_providers(self, envelope: Envelope) -> list[str] | None:
        """The client's own provider choice (part of the result cache's key), if any."""
        if envelope.provider is None:
            return None
        return [envelope.provider, *(envelope.fallback or [])]


def without_inline_media(params: Params) -> dict[str, object]:
    """The parameters as stored, without inline base64 (checked as base64 and media)."""
    values = params.model_dump(exclude_none=True)
    for name in params.media():
        media = values.get(name)
        if isinstance(media, dict):
            media.pop("data", None)
    return values


def webhook_events(envelope: Envelope, tenant: Tenant) -> list[WebhookEvent]:
    """The job's webhook events: its own choice, else its tenant's, else a job's end."""
    chosen = envelope.webhook_events or tenant.webhook_events or DEFAULT_WEBHOOK_EVENTS
    return sorted(set(chosen), key=_EVENT_ORDER.__getitem__)


_EVENT_ORDER = {event: index for index, event in enumerate(WebhookEvent)}
"""Events in the order they are declared (a job's own order)."""
