"""The helpers every adapter shares (``providers/_http.py``, ``providers/_meaning.py``) and the
rule they carry: every row of every mapping table cites where it is written."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.domain.errors import ErrorCode, ProviderUnavailable, UpstreamError
from app.providers import (
    _http,
    everypixel_wire,
    imagepig,
    imagepipeline_wire,
    perfectcorp_wire,
    pixelapi_errors,
)
from app.providers._meaning import UNLISTED_CITATION, Meaning, unlisted

DOCS = Path(__file__).resolve().parents[2] / "docs" / "upstream"
STANDARDS = {"RFC 9110", "RFC 6585"}


def _rows() -> Iterator[tuple[str, object, Meaning]]:
    # keyed by status, code, message or (where, code) pair: any key, read as an object
    tables: dict[str, Mapping[Any, object]] = {
        "pixelapi": dict(pixelapi_errors.TABLE),
        "everypixel.statuses": dict(everypixel_wire.STATUSES),
        "everypixel.http": dict(everypixel_wire.HTTP_ERRORS),
        "everypixel.messages": dict(everypixel_wire.MESSAGES),
        "imagepig": dict(imagepig.ERRORS),
        "imagepipeline.statuses": dict(imagepipeline_wire.STATUSES),
        "imagepipeline.http": dict(imagepipeline_wire.HTTP_ERRORS),
        "perfectcorp.engine": dict(perfectcorp_wire.ERRORS),
        "perfectcorp.http": dict(perfectcorp_wire.HTTP_ERRORS),
    }
    for table, rows in tables.items():
        for key, row in rows.items():
            if isinstance(row, Meaning):
                yield table, key, row


ROWS = list(_rows())


def test_every_table_has_rows() -> None:
    assert {table.split(".")[0] for table, _, _ in ROWS} == {
        "pixelapi",
        "everypixel",
        "imagepig",
        "imagepipeline",
        "perfectcorp",
    }


@pytest.mark.parametrize(("table", "key", "row"), ROWS, ids=[f"{t}:{k}" for t, k, _ in ROWS])
def test_every_row_cites_the_line_that_says_it(table: str, key: object, row: Meaning) -> None:
    cite = row.cite
    if cite == UNLISTED_CITATION:
        assert row.code is ErrorCode.upstream_failed, "only upstream_failed may go uncited"
        return
    if cite.line is None:
        assert cite.source in STANDARDS and cite.words.startswith("§")
        return
    lines = (DOCS / f"{cite.source}.txt").read_text(encoding="utf-8").splitlines()
    assert table.startswith(cite.source), "a table cites its own provider's document"
    assert 1 <= cite.line <= len(lines)
    assert cite.words in lines[cite.line - 1], f"{cite} does not say {cite.words!r}"


def test_image_pig_reads_no_status_as_content_blocked() -> None:
    """The document describes no moderation: no row of Image Pig's table claims it."""
    assert all(row.code is not ErrorCode.content_blocked for _, row in imagepig.ERRORS.items())


def test_an_unlisted_error_keeps_the_raw_code() -> None:
    failed = unlisted().failed("pixelapi HTTP 418: teapot", "http_418")
    assert (failed.code, failed.provider_code, failed.retryable) == (
        ErrorCode.upstream_failed,
        "http_418",
        False,
    )


@pytest.mark.parametrize(
    ("headers", "reset", "expected"),
    [
        ({"Retry-After": "7"}, None, 7.0),
        ({"Retry-After": "-3"}, None, 0.0),
        ({"Retry-After": "Thu, 01 Jan 1970 00:00:30 GMT"}, None, 20.0),
        ({"Retry-After": "soon"}, None, None),
        ({}, None, None),
        ({"X-RateLimit-Reset": "40"}, "x-ratelimit-reset", 40.0),
        ({"X-RateLimit-Reset": "1700000012"}, "x-ratelimit-reset", 12.0),
        ({"Retry-After": "3", "X-RateLimit-Reset": "40"}, "x-ratelimit-reset", 3.0),
        ({"X-RateLimit-Reset": "later"}, "x-ratelimit-reset", None),
    ],
)
def test_retry_after_reads_seconds_dates_and_resets(
    headers: dict[str, str], reset: str | None, expected: float | None
) -> None:
    now = 1_700_000_000.0 if "X-RateLimit-Reset" in headers else 10.0
    assert _http.retry_after(httpx.Headers(headers), reset_header=reset, now=now) == expected


@pytest.mark.parametrize(
    ("response", "json", "text"),
    [
        (httpx.Response(400, json={"error": "bad"}), {"error": "bad"}, "Bad Request"),
        (httpx.Response(502, text="  <html>oops</html> "), None, "<html>oops</html>"),
        (httpx.Response(413, content=b""), None, "Request Entity Too Large"),
        (httpx.Response(400, text="x" * 1000), None, "x" * _http.ERROR_TEXT_CHARS),
    ],
)
def test_error_bodies_are_read_without_failing(
    response: httpx.Response, json: object, text: str
) -> None:
    body = _http.error_body(response)
    assert (body.json, body.text) == (json, text)


def test_unreadable_bodies_raise_provider_unavailable() -> None:
    with pytest.raises(ProviderUnavailable, match="not JSON"):
        _http.json_object("p", httpx.Response(200, text="<html>"))
    with pytest.raises(ProviderUnavailable, match="not a JSON object"):
        _http.json_object("p", httpx.Response(200, json=[1]))
    with pytest.raises(ProviderUnavailable, match="without a result URL"):
        _http.result_url("p", "ftp://x", "completed")


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
URL = "https://cdn.example.com/out"


async def test_download_types_the_file_and_retries_a_lagging_404() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as client:
        route = mock.get(URL).mock(
            side_effect=[httpx.Response(404), httpx.Response(200, content=PNG)]
        )
        out = await _http.download(
            client, "p", URL, kind="image", timeout_s=5, attempts=3, pause_s=0
        )
    assert (out.content, out.content_type, route.call_count) == (PNG, "image/png", 2)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404),
        httpx.Response(200, content=b""),
        httpx.Response(200, text="<html>expired</html>", headers={"content-type": "text/html"}),
    ],
)
async def test_download_refuses_what_is_not_the_file(answer: httpx.Response) -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as client:
        mock.get(URL).mock(return_value=answer)
        with pytest.raises(ProviderUnavailable):
            await _http.download(client, "p", URL, kind="image", timeout_s=5)


@pytest.mark.parametrize(
    ("raised", "unanswered"),
    [
        (httpx.ReadTimeout("read"), True),
        (httpx.ReadError("reset"), True),
        (httpx.RemoteProtocolError("closed mid-answer"), True),
        (httpx.ConnectTimeout("connect"), False),
        (httpx.ConnectError("refused"), False),
        (httpx.PoolTimeout("pool"), False),
        (httpx.WriteError("broken pipe"), False),
    ],
)
def test_a_request_that_went_out_whole_and_got_no_answer_says_so(
    raised: Exception, unanswered: bool
) -> None:
    """Only a request sent whole may have been done upstream: a refused or half-sent one
    certainly was not."""
    with pytest.raises(UpstreamError) as caught, _http.upstream_errors("alpha"):
        raise raised
    assert caught.value.unanswered is unanswered
