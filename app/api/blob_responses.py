"""Answering a signed blob URL: the bytes (or the asked byte range), or a redirect.

Both backends are read as a stream of chunks, never whole: from an object store the gateway
asks for the same single range the client asked for and hands the chunks on as they come.
With ``MEDIAGATE_ARTIFACT_REDIRECT`` and an object store it answers 307 with a presigned URL
instead, and the store itself honours the client's ``Range``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from app.blobs import BlobStore
from app.config import Settings
from app.domain.errors import ErrorCode, FieldError, GatewayError, NotFound
from app.signing import UrlSigner
from app.store.files import BlobMeta

CACHE_CONTROL = "private, max-age=3600"


class RangeNotSatisfiable(GatewayError):
    def __init__(self, size: int) -> None:
        detail = f"the range asked for lies past the end of the {size} bytes"
        code = ErrorCode.range_not_satisfiable
        super().__init__(
            detail,
            code,
            416,
            [FieldError("/headers/Range", detail, code)],
            headers={"Content-Range": f"bytes */{size}"},
        )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as (start, end exclusive) within ``size``; None for the whole.

    A header the gateway does not serve as a range (another unit, several ranges, a
    malformed one) is ignored, as HTTP allows: the answer is the whole blob with 200.
    A position is ASCII digits only (HTTP's ``DIGIT``): ``str.isdigit`` also takes ``²`` or
    ``١``, which ``int`` refuses or reads as another number. A well-formed range that starts
    past the end raises ``RangeNotSatisfiable``.
    """
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or "," in spec:
        return None
    first, last = first.strip(), last.strip()
    if not (_digits(first) or first == "") or not (_digits(last) or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - suffix), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, min(int(last) + 1 if last else size, size)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


async def serve_signed(
    request: Request,
    *,
    path: str,
    what: str,
    blob_id: str,
    prefix: str,
    lookup: Callable[[str], Awaitable[BlobMeta | None]],
    expires: int,
    sig: str,
    signer: UrlSigner,
    blobs: BlobStore,
    settings: Settings,
) -> Response:
    """The ``what`` (``artifact``, ``file``) ``blob_id`` behind the signed URL of ``path``: 404
    alike for an id of the wrong kind (not starting with ``prefix``), a signature that does not
    hold or has expired, and a blob no longer known."""
    if not blob_id.startswith(prefix) or not signer.verify(path, expires, sig):
        raise NotFound(what, blob_id)
    meta = await lookup(blob_id)
    if meta is None:
        raise NotFound(what, blob_id)
    return await serve_blob(
        blobs, settings, request, meta.id, meta.content_type, meta.size, what, expires
    )


async def serve_blob(
    blobs: BlobStore,
    settings: Settings,
    request: Request,
    blob_id: str,
    content_type: str,
    size: int,
    what: str,
    expires: int,
) -> Response:
    """The blob behind a URL signed until ``expires`` (Unix seconds)."""
    if settings.artifact_redirect:  # a BlobStoreError is a 503 (app.api.problems)
        url = await blobs.presign(blob_id, max(1, expires - int(time.time())))
        if url is not None:
            return RedirectResponse(url, 307, headers={"Cache-Control": "no-store"})
    wanted = parse_range(request.headers.get("range"), size)
    reader = await blobs.open(blob_id, wanted)
    if reader is None:
        raise NotFound(what, blob_id)
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "Accept-Ranges": "bytes",
        "Content-Length": str(reader.end - reader.start),
    }
    if reader.etag:
        headers["ETag"] = reader.etag
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {reader.start}-{reader.end - 1}/{reader.size}"
    return StreamingResponse(
        reader.chunks, status_code=status, media_type=content_type, headers=headers
    )
