"""Where a row of an adapter's mapping table is written: the line of the provider's document
(``docs/upstream/<name>.txt``) that says it, or the section of the HTTP standard where the
document only says it uses HTTP status codes. Kept apart from the error rows (``_meaning``,
which build the adapters' ``Failed``) so that the media limits' table cites its sources
without importing the adapters' base, which refers to that table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Citation:
    """Where a row of a mapping table is written."""

    source: str
    """A provider's document (``pixelapi``…), or a standard (``RFC 9110``)."""
    line: int | None
    """The document's line (1-based); ``None`` for a standard."""
    words: str
    """Words found on that line (the section, for a standard): a check that the line says it."""

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.source} {self.words}"
        return f"docs/upstream/{self.source}.txt:{self.line}"


def document(provider: str) -> _Cite:
    """A citer for one provider's document: ``cite(842, "Bad request")``."""
    return _Cite(provider)


@dataclass(frozen=True)
class _Cite:
    provider: str

    def __call__(self, line: int, words: str) -> Citation:
        return Citation(self.provider, line, words)


def http_standard(section: str) -> Citation:
    """An HTTP status's meaning from the standard (RFC 9110 / RFC 6585 section)."""
    rfc, _, where = section.partition(" §")
    return Citation(rfc, None, f"§{where}")


HTTP_400 = http_standard("RFC 9110 §15.5.1")
HTTP_401 = http_standard("RFC 9110 §15.5.2")
HTTP_403 = http_standard("RFC 9110 §15.5.4")
HTTP_404 = http_standard("RFC 9110 §15.5.5")
HTTP_413 = http_standard("RFC 9110 §15.5.14")
HTTP_422 = http_standard("RFC 9110 §15.5.21")
HTTP_429 = http_standard("RFC 6585 §4")
HTTP_5XX = http_standard("RFC 9110 §15.6")
