"""Perfect Corp ``dst_id`` chaining (respx): a result's ``dst_id`` ("File ID of the result file
is used for integrating other task. No need to reupload file") is kept with the output, and an
earlier output this account keeps goes into the next task by it, without a file call or an
upload, when it fits the task as it is."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from redis.asyncio import Redis

from app.domain.media import ImageInput
from app.domain.models import UpstreamFile
from app.domain.operations import Colorize, Hairstyle, Operation, Params, TransferMakeup
from app.providers import perfectcorp, perfectcorp_auth
from app.providers.base import Call, Credential, Media, Submitted, Succeeded
from app.providers.perfectcorp import PerfectCorpAdapter
from app.sandbox import images
from app.sandbox.credentials import PERFECTCORP_CLIENT_SECRET
from app.store.adapter_state import RedisAdapterState
from tests.providers.test_perfectcorp import (
    CLIENT_ID,
    PHOTO,
    RESULT_URL,
    STYLE,
    TASK_ID,
    Upstream,
    _config,
    _success,
)
from tests.utils.media_source import DictMedia

ACCOUNT = perfectcorp_auth.account(
    Credential(client_id=CLIENT_ID, client_secret=PERFECTCORP_CLIENT_SECRET)
).key
DAY_S = 24 * 3600.0
PNG_RESULT = images.render(64, 48, "png", seed=4)


def _kept(file_id: str, account: str = ACCOUNT, days_left: float = 20) -> UpstreamFile:
    return UpstreamFile(
        provider="perfectcorp",
        account=account,
        file_id=file_id,
        usable_until=time.time() + days_left * DAY_S,
    )


MEDIA = DictMedia(
    {
        "file_photo": Media(PHOTO, "image/jpeg"),
        "art_kept": Media(PHOTO, "image/jpeg", _kept("dst-kept")),
        "art_other": Media(PHOTO, "image/jpeg", _kept("dst-other", account="0123456789abcdef")),
        "art_old": Media(PHOTO, "image/jpeg", _kept("dst-old", days_left=-1)),
        "art_png": Media(PNG_RESULT, "image/png", _kept("dst-png")),
        "art_pixelapi": Media(
            PHOTO,
            "image/jpeg",
            UpstreamFile(provider="pixelapi", account=ACCOUNT, file_id="x", usable_until=1e12),
        ),
    }
)


def _call(operation: Operation, params: Params, job_id: str = "job_1") -> Call:
    return Call(job_id, operation, params, MEDIA)


def _artifact(artifact_id: str) -> ImageInput:
    return ImageInput(artifact_id=artifact_id)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield Upstream(router)


@pytest.fixture
async def adapter(redis_client: Redis) -> AsyncIterator[PerfectCorpAdapter]:
    state = RedisAdapterState(redis_client, "perfectcorp")
    async with httpx.AsyncClient() as client:
        yield PerfectCorpAdapter(client, _config(), state)


async def test_a_result_keeps_its_dst_id_with_the_account_that_holds_it(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    upstream.poll("colorize", _success(RESULT_URL))
    colorize = _call(Operation.image_colorize, Colorize(image=ImageInput(file_id="file_photo")))
    before = time.time()
    result = await adapter.poll(colorize, TASK_ID)
    assert isinstance(result, Succeeded)
    (output,) = result.files
    assert output.content == PHOTO
    kept = output.upstream
    assert kept is not None
    assert (kept.provider, kept.account, kept.file_id) == ("perfectcorp", ACCOUNT, "dst-0")
    # kept 30 days upstream; sent only while a day of them remains
    assert before + 29 * DAY_S <= kept.usable_until <= time.time() + 29 * DAY_S


async def test_an_earlier_output_this_account_keeps_goes_by_its_dst_id_without_an_upload(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    call = _call(Operation.image_colorize, Colorize(image=_artifact("art_kept")))
    assert await adapter.submit(call) == Submitted(TASK_ID, poll_after_s=1.5)
    assert upstream.files.call_count == 0 and upstream.storage.call_count == 0
    assert upstream.task_body()["payload"]["file_sets"] == {"src_ids": ["dst-kept"]}
    assert call.conformed == []


@pytest.mark.parametrize(
    "artifact",
    ["art_other", "art_old", "art_pixelapi"],
    ids=["another-account", "past-its-retention", "another-provider"],
)
async def test_an_output_the_account_does_not_keep_is_uploaded(
    upstream: Upstream, adapter: PerfectCorpAdapter, artifact: str
) -> None:
    call = _call(Operation.image_colorize, Colorize(image=_artifact(artifact)))
    assert isinstance(await adapter.submit(call), Submitted)
    assert upstream.files.call_count == 1 and upstream.storage.call_count == 1
    assert upstream.storage.calls.last.request.content == PHOTO
    assert upstream.task_body()["payload"]["file_sets"] == {"src_ids": ["fid-image.jpg"]}


async def test_an_output_that_must_be_fitted_to_the_task_is_uploaded_fitted(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    # the hairstyle generator takes JPEG only: a PNG result is re-encoded, so uploaded
    params = Hairstyle(image=_artifact("art_png"), variant="style", style_id=STYLE)
    call = _call(Operation.image_hairstyle, params)
    assert isinstance(await adapter.submit(call), Submitted)
    assert upstream.files.call_count == 1 and upstream.storage.call_count == 1
    assert upstream.storage.calls.last.request.headers["content-type"] == "image/jpeg"
    assert upstream.task_body()["payload"]["file_sets"] == {"src_ids": ["fid-image.jpg"]}
    assert [change.input for change in call.conformed] == ["art_png"]


async def test_only_the_inputs_not_kept_are_uploaded(
    upstream: Upstream, adapter: PerfectCorpAdapter
) -> None:
    params = TransferMakeup(image=_artifact("art_kept"), reference=ImageInput(file_id="file_photo"))
    call = _call(Operation.image_transfer_makeup, params)
    assert isinstance(await adapter.submit(call), Submitted)
    asked = upstream.files.calls.last.request.content
    assert b"reference.jpg" in asked and b"image." not in asked
    assert upstream.storage.call_count == 1
    assert upstream.task_body()["payload"]["file_sets"] == {
        "src_ids": ["dst-kept"],
        "ref_ids": ["fid-reference.jpg"],
    }


def test_the_reuse_window_is_the_documents_retention_less_a_day() -> None:
    assert perfectcorp.RESULT_RETENTION_S == 30 * DAY_S
    assert perfectcorp.RESULT_REUSE_MARGIN_S == DAY_S
