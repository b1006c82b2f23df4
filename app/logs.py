"""Structured logs: one JSON object per line.

Records carry the fields passed in ``extra`` (``request_id``, ``tenant_id``, ``job_id``,
``operation``, ``provider``, ``latency_ms``) when the caller has them. Credentials never
reach a log line: adapters keep them out of messages, and httpx's own per-request lines
(which include URLs) are silenced. As a last guard, :func:`redact` masks what still looks
like a credential in a message or traceback: API keys (``mg_live_…``), bearer tokens, the
``sig`` of signed URLs and ``api_key``/``secret``/``token``/``password`` values.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

CONTEXT_FIELDS = ("request_id", "tenant_id", "job_id", "operation", "provider", "latency_ms")

REDACTED = "[redacted]"
_SECRETS = re.compile(
    r"(?P<key>\bmg_(?:live|test)_)[A-Za-z0-9_]+"
    r"|(?P<bearer>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+"
    r"|(?P<param>[?&;]sig=)[^&\s\"']+"
    r"|(?P<named>\b(?:[a-z_-]*api[_-]?key|[a-z_-]*secret|[a-z_-]*token|password)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"',;&}]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with anything shaped like a credential replaced by ``[redacted]``."""
    return _SECRETS.sub(lambda m: (m.group(m.lastgroup or 0) or "") + REDACTED, text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
