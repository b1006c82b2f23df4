"""The gateway's one error tree.

Every error a client can see is a :class:`GatewayError` carrying a stable snake_case
:class:`ErrorCode`, an HTTP status and a list of field errors, each a JSON pointer to the part
of the request it is about (``app.api.problems`` lists the pointers' forms). An error about an
id the request names (``NotFound``, a ``Conflict`` over a job) says which id in ``about``; the
API layer, which knows where the id came from, points at that path parameter. The API layer
renders them as ``application/problem+json`` (RFC 9457); nothing else in the code base knows
about HTTP responses.

::

    GatewayError
    ├── InvalidRequest            400/413/422  malformed JSON, wrong types, bad media, bad base64
    │   ├── UnsupportedParameter  422          the chosen provider cannot honour a parameter
    │   └── MissingParameter      422          the chosen provider requires a parameter not given
    ├── Unauthenticated           401          missing, unknown or revoked API key
    ├── Forbidden                 403          suspended tenant
    ├── RateLimited               429          a tenant's request rate or job concurrency
    ├── NotFound                  404          unknown id, or an id of another tenant
    ├── Conflict                  409          e.g. cancelling a finished job
    ├── StoreUnavailable          503          Redis cannot be reached
    └── UpstreamError             502/503/504  raised inside adapters, recorded on jobs
        ├── ProviderUnavailable                refused connection, 5xx, garbage body
        └── UpstreamTimeout                    the upstream did not answer in time

Upstream outcomes that are the *user's* fault (no face found, content blocked) are not
exceptions: adapters return them as ``Failed`` results with the canonical code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.domain.enums import TextEnum


class ErrorCode(TextEnum):
    """Stable machine-readable codes. Clients switch on these, so they never change."""

    invalid_json = "invalid_json"
    invalid_parameter = "invalid_parameter"
    unsupported_parameter = "unsupported_parameter"
    missing_parameter = "missing_parameter"
    unsupported_operation = "unsupported_operation"
    invalid_media = "invalid_media"
    media_too_large = "media_too_large"
    payload_too_large = "payload_too_large"
    unsafe_url = "unsafe_url"
    invalid_base64 = "invalid_base64"
    unauthenticated = "unauthenticated"
    forbidden = "forbidden"
    not_found = "not_found"
    conflict = "conflict"
    idempotency_key_reused = "idempotency_key_reused"
    idempotency_key_in_flight = "idempotency_key_in_flight"
    insufficient_credits = "insufficient_credits"
    rate_limited = "rate_limited"
    no_face_detected = "no_face_detected"
    content_blocked = "content_blocked"
    provider_unavailable = "provider_unavailable"
    provider_rate_limited = "provider_rate_limited"
    provider_auth_failed = "provider_auth_failed"
    upstream_timeout = "upstream_timeout"
    upstream_failed = "upstream_failed"
    job_canceled = "job_canceled"
    store_unavailable = "store_unavailable"
    range_not_satisfiable = "range_not_satisfiable"
    internal_error = "internal_error"
    media_fetch_timeout = "media_fetch_timeout"
    storage_quota_exceeded = "storage_quota_exceeded"
    too_many_streams = "too_many_streams"


API_KEY_POINTER = "/headers/Authorization"
"""Where a request carries its API key (or the admin token): what a refused key points at."""


@dataclass(frozen=True)
class FieldError:
    """One invalid field: a JSON pointer into the request (``/image/data``) and why."""

    pointer: str
    detail: str
    code: ErrorCode = ErrorCode.invalid_parameter


@dataclass
class GatewayError(Exception):
    """Base of every error the gateway reports to a client."""

    detail: str
    code: ErrorCode = ErrorCode.internal_error
    status: int = 500
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    about: str | None = None
    """The id the error is about, when the request names it (in its path, as a rule)."""

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    @property
    def title(self) -> str:
        return self.code.replace("_", " ").capitalize()


class InvalidRequest(GatewayError):
    def __init__(
        self,
        detail: str,
        *,
        code: ErrorCode = ErrorCode.invalid_parameter,
        pointer: str | None = None,
        status: int = 422,
        errors: list[FieldError] | None = None,
    ) -> None:
        field_errors = list(errors or [])
        if pointer is not None and not field_errors:
            field_errors.append(FieldError(pointer, detail, code))
        super().__init__(detail, code, status, field_errors)


class UnsupportedParameter(InvalidRequest):
    def __init__(self, parameter: str, provider: str, capable: list[str]) -> None:
        where = f"; providers that can: {', '.join(capable)}" if capable else ""
        super().__init__(
            f"provider {provider!r} cannot honour parameter {parameter!r}{where}",
            code=ErrorCode.unsupported_parameter,
            pointer=f"/{parameter}",
        )
        self.extra = {"parameter": parameter, "provider": provider, "capable_providers": capable}


class MissingParameter(InvalidRequest):
    def __init__(self, parameter: str, provider: str, not_needing: list[str]) -> None:
        where = f"; providers that do not need it: {', '.join(not_needing)}" if not_needing else ""
        super().__init__(
            f"provider {provider!r} requires parameter {parameter!r}{where}",
            code=ErrorCode.missing_parameter,
            pointer=f"/{parameter}",
        )
        self.extra = {
            "parameter": parameter,
            "provider": provider,
            "providers_not_requiring": not_needing,
        }


class Unauthenticated(GatewayError):
    def __init__(self, detail: str = "a valid API key is required") -> None:
        code = ErrorCode.unauthenticated
        super().__init__(detail, code, 401, [FieldError(API_KEY_POINTER, detail, code)])


class RateLimited(GatewayError):
    def __init__(self, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail, ErrorCode.rate_limited, 429, headers=headers)


class Forbidden(GatewayError):
    """The API key is known, and its tenant is suspended."""

    def __init__(self, detail: str) -> None:
        code = ErrorCode.forbidden
        super().__init__(detail, code, 403, [FieldError(API_KEY_POINTER, detail, code)])


class NotFound(GatewayError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} not found", ErrorCode.not_found, 404, about=ident)


class Conflict(GatewayError):
    """``about``: the id of what is in the way (a job the request names); ``pointer``: the
    part of the request in the way, when that is known where the conflict is found."""

    def __init__(
        self, detail: str, *, about: str | None = None, pointer: str | None = None
    ) -> None:
        code = ErrorCode.conflict
        errors = [] if pointer is None else [FieldError(pointer, detail, code)]
        super().__init__(detail, code, 409, errors, about=about)


class StoreUnavailable(GatewayError):
    def __init__(self, detail: str = "the job store is unavailable, retry shortly") -> None:
        super().__init__(detail, ErrorCode.store_unavailable, 503)


class UpstreamError(GatewayError):
    """An upstream could not be used; always retryable (by another attempt or provider).

    ``unanswered``: the request went out whole and no answer came back (read timeout,
    connection cut while waiting): the upstream may have done it."""

    def __init__(
        self, detail: str, code: ErrorCode, status: int = 502, *, unanswered: bool = False
    ) -> None:
        super().__init__(detail, code, status)
        self.unanswered = unanswered


class ProviderUnavailable(UpstreamError):
    def __init__(self, detail: str, *, unanswered: bool = False) -> None:
        super().__init__(detail, ErrorCode.provider_unavailable, 503, unanswered=unanswered)


class UpstreamTimeout(UpstreamError):
    def __init__(self, detail: str, *, unanswered: bool = False) -> None:
        super().__init__(detail, ErrorCode.upstream_timeout, 504, unanswered=unanswered)
