"""Settings, read from ``MEDIAGATE_*`` environment variables (nested with ``__``).

An optional YAML file named by ``MEDIAGATE_CONFIG`` supplies the same fields (routing,
prices, seed data); environment variables win over it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, NonNegativeInt, PositiveFloat, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.domain.operations import Operation
from app.domain.providers import ProviderName

SANDBOX_TENANT_KEY = "mg_test_sandbox"
"""API key of the seeded sandbox tenant; refused unless sandbox mode is on."""

MIN_SECRET_CHARS = 32
"""The shortest admin token, URL-signing key or key pepper accepted (the admin API stays off
with a shorter token; production refuses to start with one)."""

_PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "example", "placeholder")
"""Secrets containing one of these are the defaults of a shipped file, never real ones."""


DEFAULT_BASE_URLS: dict[str, str] = {
    "everypixel": "https://api.everypixel.com",
    "pixelapi": "https://api.pixelapi.dev",
    "perfectcorp": "https://yce-api-01.perfectcorp.com",
    "imagepig": "https://api.imagepig.com",
    "imagepipeline": "https://api.imagepipeline.io",
}


DOCUMENTED_JOB_DEADLINES: dict[Operation, float] = {
    # Everypixel: "Processing 1 minute of video content may take approximately 10 minutes", and
    # tasks run "one at a time per account" (docs/upstream/everypixel.txt:84, 87, 726): a few
    # minutes of video behind a queue of others.
    Operation.video_lipsync: 4 * 3600.0,
    Operation.video_swap_face: 4 * 3600.0,
    # Everypixel TTS: "1 minute to process 1 minute of audio", one task at a time (87, 589).
    Operation.audio_speech: 3600.0,
}
"""Deadlines of the operations whose documents say they take long (the rest: job_deadline_s)."""

DOCUMENTED_SECONDS_PER_MEDIA_SECOND: dict[Operation, float] = {
    # Everypixel: "Processing 1 minute of video content may take approximately 10 minutes";
    # video face swap "similarly ... roughly proportional to the video length" (87, 88).
    Operation.video_lipsync: 10.0,
    Operation.video_swap_face: 10.0,
}
"""Processing time a second of the input's audio or video takes, where a document says: a
job's deadline grows by it for the length probed at submission (read literally: the longest
input, never shortened)."""


class CredentialSettings(BaseModel):
    api_key: SecretStr | None = None
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    plan: Literal["free", "starter", "pro", "scale"] | None = Field(
        default=None,
        description="PixelAPI: the account's plan (its request rate); unset, the most careful "
        "paid plan (starter) is assumed.",
    )


class LimitSettings(BaseModel):
    """An upstream plan that differs from the one the provider's document describes."""

    requests_per_minute: float | None = Field(
        default=None, gt=0, description="Per credential (every submit and poll counts)."
    )
    concurrent_jobs: int | None = Field(default=None, ge=1, description="Per credential.")


class ProviderSettings(CredentialSettings):
    base_url: str | None = Field(default=None, description="Unset: the provider's public API.")
    pool: list[CredentialSettings] = Field(
        default_factory=list,
        description="More accounts at this provider; each has its own upstream budget.",
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Per upstream call.")
    poll_interval_s: float = Field(default=2.0, gt=0, description="Between status polls.")
    limits: dict[str, LimitSettings] = Field(
        default_factory=dict,
        description="Your plan's limits by the adapter's limit name (`default`, …), over the "
        'documented ones; e.g. {"default": {"requests_per_minute": 6000}}.',
    )


class ProvidersSettings(BaseModel):
    everypixel: ProviderSettings = Field(default_factory=ProviderSettings)
    pixelapi: ProviderSettings = Field(default_factory=ProviderSettings)
    perfectcorp: ProviderSettings = Field(default_factory=ProviderSettings)
    imagepig: ProviderSettings = Field(default_factory=ProviderSettings)
    imagepipeline: ProviderSettings = Field(default_factory=ProviderSettings)

    def named(self, name: str) -> ProviderSettings:
        """A provider's settings, its public base URL filled in when none is configured."""
        value = getattr(self, name)
        assert isinstance(value, ProviderSettings)
        if value.base_url is None:
            return value.model_copy(update={"base_url": DEFAULT_BASE_URLS[name]})
        return value


DEFAULT_ROUTING: dict[Operation, list[ProviderName]] = {
    Operation.image_generate: ["imagepig", "pixelapi"],
    Operation.image_remove_background: ["imagepig", "pixelapi"],
    Operation.image_upscale: ["imagepig", "pixelapi"],
    Operation.image_swap_face: ["imagepig"],
    Operation.image_outpaint: ["imagepig"],
}


class CircuitSettings(BaseModel):
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    min_requests: int = Field(default=10, ge=1, description="Outcomes needed before it opens.")
    window_s: float = Field(default=30.0, gt=0)
    open_s: float = Field(default=15.0, gt=0, description="Open this long before a probe.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MEDIAGATE_",
        env_nested_delimiter="__",
        extra="ignore",
        hide_input_in_errors=True,  # errors never echo a secret
    )

    environment: Literal["development", "production"] = "development"
    redis_url: str | None = Field(
        default=None, description="Unset: start a private redis-server with AOF under data_dir."
    )
    redis_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="A Redis command, connection or wait for a free connection failing after "
        "this long answers 503 store_unavailable instead of hanging the request.",
    )
    redis_wait_replicas: int = Field(
        default=0,
        ge=0,
        description="After creating or saving a job, WAIT until this many replicas hold it "
        "(0: off).",
    )
    redis_wait_timeout_ms: int = Field(
        default=1000, ge=1, description="How long that WAIT may take before answering anyway."
    )
    data_dir: Path = Field(default=Path(".mediagate"), description="Artifacts and embedded Redis.")
    blob_url: str | None = Field(
        default=None,
        description="Where uploads and artifacts are kept: `s3://bucket/prefix` for an "
        "S3-compatible object store (credentials and region from the standard AWS_* "
        "variables), `file:///path` or unset for local disk under data_dir/blobs.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The object store's URL when it is not AWS (SeaweedFS, MinIO, …).",
    )
    s3_presign_endpoint_url: str | None = Field(
        default=None,
        description="The object store's URL as clients reach it, for presigned URLs "
        "(default: s3_endpoint_url).",
    )
    artifact_redirect: bool = Field(
        default=False,
        description="Object store only: answer a signed artifact URL with a 307 to a "
        "presigned URL of the object instead of streaming it through the gateway.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description=f"Bearer token of the admin API; the admin API is off unless it is set "
        f"to at least {MIN_SECRET_CHARS} characters.",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="Signs artifact and file URLs; generated and kept under data_dir if unset "
        "(development only: production requires it).",
    )
    key_pepper: SecretStr | None = Field(
        default=None,
        description="HMAC key mixed into the stored digests of API keys, so a copy of Redis "
        "alone cannot be used to check guessed keys. Set it before issuing keys: keys issued "
        "under another pepper stop working. Required in production.",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000", description="How upstreams and clients reach us."
    )
    upstream_callbacks: bool | None = Field(
        default=None,
        description="Give Everypixel and ImagePipeline a per-job callback URL "
        "(`POST /v1/providers/{name}/callbacks/{token}` under public_base_url): a finished "
        "upstream task is then polled at once instead of at its next poll (the status call "
        "still decides the outcome). Unset: on when MEDIAGATE_PUBLIC_BASE_URL is set "
        "explicitly (the default URL is local; no upstream could reach it). `mediagate "
        "serve` exports false to its server processes when neither is given.",
    )
    result_cache_ttl_s: int = Field(
        default=0,
        ge=0,
        le=30 * 86400,
        description="How long a job's result serves the same request again; 0 (the default) "
        "turns the result cache off. A tenant may set its own.",
    )
    cache_hit_percent: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Share of the price a result served from the cache costs (0: free); a "
        "tenant may set its own.",
    )
    batch_window: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Jobs of one batch running at once (the tenant's job limit also applies).",
    )
    playground: bool | None = Field(
        default=None,
        description="Serve the playground page at /playground. Unset: on, except in production.",
    )
    sandbox: bool = False
    sandbox_url: str | None = Field(
        default=None, description="Sandbox mode: where the emulators run (default: this gateway)."
    )
    sandbox_latency_s: float = Field(
        default=0.0, ge=0, description="Sandbox: delay of every synchronous upstream answer."
    )
    sandbox_job_s: float = Field(
        default=1.0, ge=0, description="Sandbox: time an asynchronous upstream job takes."
    )
    sandbox_rate_limits: dict[Literal["pixelapi", "perfectcorp"], PositiveFloat] = Field(
        default_factory=dict,
        description="Sandbox: requests per minute per credential the pixelapi and perfectcorp "
        "emulators allow, instead of the documented plan.",
    )
    sandbox_ip_limits: dict[Literal["perfectcorp"], PositiveFloat] = Field(
        default_factory=dict,
        description="Sandbox: requests per 5 minutes from one address the perfectcorp "
        "emulator allows, instead of the documented 100.",
    )
    sandbox_polling_interval_ms: int | None = Field(
        default=None, ge=1, description="Sandbox: the `polling_interval` Perfect's tasks answer."
    )
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings)
    routing: dict[Operation, list[ProviderName]] = Field(
        default_factory=lambda: dict(DEFAULT_ROUTING),
        description="operation → providers in order of preference (the rest follow by name); "
        "an unknown operation or provider is refused at start-up.",
    )
    config: Path | None = Field(default=None, description="Optional YAML file with these fields.")

    prices: dict[Operation, dict[ProviderName, NonNegativeInt | dict[str, int | float | str]]] = (
        Field(
            default_factory=dict,
            description="operation → provider → flat credits, or a rule {unit, rate, cap} "
            "(units: job, output, second, 1k_chars, megapixel), over the defaults. An unknown "
            "operation, provider or unit is refused at start-up.",
        )
    )
    tenant_rate_limit_rpm: int = Field(default=600, ge=1, description="Default per tenant.")
    tenant_max_concurrent_jobs: int = Field(default=100, ge=1, description="Default per tenant.")

    run_worker: bool = Field(default=True, description="Run a worker inside `mediagate serve`.")
    worker_concurrency: int = Field(default=64, ge=1)
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="`mediagate worker`: address of /metrics, /healthz."
    )
    worker_metrics_port: int = Field(
        default=9100, ge=0, le=65535, description="`mediagate worker`: its port; 0 turns it off."
    )
    lease_s: float = Field(default=30.0, gt=1, description="A claimed job's lease.")
    circuit: CircuitSettings = Field(default_factory=CircuitSettings)
    job_deadline_s: float = Field(
        default=1800, gt=0, description="A job not finished this long after creation fails."
    )
    job_deadlines: dict[Operation, PositiveFloat] = Field(
        default_factory=dict,
        description="Per-operation deadlines, over the documented ones "
        "(video.lipsync and video.swap_face 14400, audio.speech 3600).",
    )

    def deadlines(self) -> dict[Operation, float]:
        """Per-operation deadlines: the documents' (``DOCUMENTED_JOB_DEADLINES``), then the
        configured ones over them."""
        return {**DOCUMENTED_JOB_DEADLINES, **self.job_deadlines}

    webhook_retry_schedule_s: list[float] = Field(
        default=[0, 5, 300, 1800, 7200, 18000, 36000, 36000],
        min_length=1,
        description="Wait before each webhook delivery attempt (the first is immediate).",
    )
    charge_accepted_work: bool = Field(
        default=True,
        description="Charge a job canceled or past its deadline once the upstream accepted its "
        "task (the provider bills for it); a tenant's own setting wins.",
    )
    job_retention_s: int = Field(default=7 * 86400, ge=60, description="Finished jobs kept.")
    artifact_url_ttl_s: int = Field(default=3600, ge=60, description="Signed URL lifetime.")
    max_media_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    url_allowlist: list[str] = Field(
        default_factory=list,
        description="Hosts or CIDR networks user URLs may reach although not public "
        "(media inputs, callback URLs); everything else non-public is refused.",
    )
    max_prefer_wait_s: int = 60

    # Fairness: what one tenant's slow URLs, hanging receivers or idle streams may hold.
    media_fetch_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest one media URL fetch may take, to its last byte."
    )
    media_fetch_min_rate_bps: int = Field(
        default=32 * 1024,
        ge=0,
        description="Bytes per second a media URL must average from the start of the fetch "
        "once media_fetch_grace_s has passed; slower fetches are cut off (0: no minimum).",
    )
    media_fetch_grace_s: float = Field(
        default=2.0, ge=0, description="Time a media URL has before its minimum rate applies."
    )
    tenant_max_concurrent_fetches: int = Field(
        default=4,
        ge=1,
        description="Media URL fetches one tenant runs at once over all workers; its other "
        "jobs that need a fetch wait in the queue without holding a worker or upstream slot.",
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="One webhook delivery attempt, connect to status line."
    )
    webhook_concurrency: int = Field(
        default=64, ge=1, description="Webhook deliveries in flight per worker process."
    )
    webhook_endpoint_concurrency: int = Field(
        default=2,
        ge=1,
        description="Deliveries of one tenant in flight to one receiver (scheme, host and "
        "port) per worker process; more due for it wait, without delaying other receivers.",
    )
    webhook_tenant_concurrency: int = Field(
        default=8, ge=1, description="Deliveries in flight for one tenant per worker process."
    )
    tenant_max_event_streams: int = Field(
        default=16,
        ge=1,
        description="Open `GET /v1/jobs/{id}/events` streams per tenant over all processes; "
        "beyond it, 429 too_many_streams.",
    )
    http_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Time a client has to send a request's line and headers, from the "
        "connection (or the previous response) on; then the connection is closed.",
    )
    http_body_timeout_s: float = Field(
        default=120.0, gt=0, description="Time a client has to send a request's whole body."
    )
    http_keep_alive_s: int = Field(
        default=5, ge=1, description="An idle keep-alive connection is closed after this."
    )
    http_max_head_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Request line and headers together; beyond it, 431 and the connection "
        "is closed.",
    )

    # Storage lifecycle.
    file_retention_s: int = Field(
        default=7 * 86400,
        ge=1,
        description="Uploaded files (and inline inputs) are kept this long.",
    )
    output_retention_s: int | None = Field(
        default=None, ge=1, description="Job outputs are kept this long (unset: job_retention_s)."
    )
    tenant_storage_quota_bytes: int = Field(
        default=10 * 1024**3,
        ge=0,
        description="Bytes of files and outputs one tenant may keep at once; an upload or an "
        "output beyond it is refused with storage_quota_exceeded.",
    )
    storage_sweep_interval_s: float = Field(
        default=30.0, gt=0, description="How often a worker deletes files whose retention ended."
    )

    @property
    def output_retention(self) -> int:
        return self.output_retention_s or self.job_retention_s

    @property
    def sandbox_base_url(self) -> str:
        return (self.sandbox_url or self.public_base_url).rstrip("/")

    @property
    def upstream_callbacks_on(self) -> bool:
        """``upstream_callbacks``; unset, whether ``public_base_url`` was given (environment,
        YAML or keyword), not merely defaulted."""
        if self.upstream_callbacks is not None:
            return self.upstream_callbacks
        return "public_base_url" in self.model_fields_set

    @model_validator(mode="after")
    def _safe_for_production(self) -> Settings:
        if self.environment == "production":
            if self.sandbox:
                raise ValueError(
                    "MEDIAGATE_SANDBOX: sandbox mode (and its well-known tenant key "
                    f"{SANDBOX_TENANT_KEY!r}) cannot run in production"
                )
            for name in ("admin_token", "signing_key", "key_pepper"):
                problem = weak_secret(getattr(self, name))
                if problem is not None:
                    raise ValueError(f"MEDIAGATE_{name.upper()} {problem} in production")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    """Fields from the YAML file named by ``MEDIAGATE_CONFIG``, lowest priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("MEDIAGATE_CONFIG")
        if not path:
            return {}
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        return loaded


def weak_secret(value: SecretStr | None) -> str | None:
    """Why a secret setting is not fit for production (unset, short, a shipped default), or
    None. Never shows the value."""
    secret = value.get_secret_value() if value is not None else ""
    if not secret.strip():
        return "must be set"
    if len(secret) < MIN_SECRET_CHARS:
        return f"must be at least {MIN_SECRET_CHARS} characters (it has {len(secret)})"
    if any(word in secret.lower() for word in _PLACEHOLDER_WORDS) or len(set(secret)) < 8:
        return "is a default or placeholder value"
    return None


def admin_token(settings: Settings) -> str | None:
    """The admin token, or None (the admin API is off) when it is unset or shorter than
    :data:`MIN_SECRET_CHARS`."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    return token if len(token.strip()) >= MIN_SECRET_CHARS else None


@lru_cache
def get_settings() -> Settings:
    return Settings()
