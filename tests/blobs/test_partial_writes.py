"""A local blob whose write was cut short by a killed process leaves nothing once the blob is
deleted (as the sweeper deletes it when its retention ends)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from app.blobs import LocalBlobStore
from tests.utils.deadlines import STARTUP_S

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from app.blobs import LocalBlobStore

    async def main() -> None:
        store = LocalBlobStore(Path(sys.argv[1]))

        async def chunks():
            yield b"x" * 100_000
            print("written", flush=True)  # the first chunk is on disk
            await asyncio.Event().wait()

        await store.put("art_cut", chunks())

    asyncio.run(main())
    """
)


def _files_of(root: Path, blob_id: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.startswith(blob_id)]


async def test_a_write_killed_half_way_is_deleted_with_its_blob(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert writer.stdout is not None
    with writer.stdout:
        try:
            ready, _, _ = select.select([writer.stdout], [], [], STARTUP_S)
            assert ready, "the writer never wrote its first chunk"
            assert writer.stdout.readline().strip() == b"written"
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()

    store = LocalBlobStore(root)
    assert await store.get("art_cut") is None  # readers never see the half
    left = _files_of(root, "art_cut")
    assert left and all(p.stat().st_size == 100_000 for p in left), left

    await store.delete("art_cut")
    assert _files_of(root, "art_cut") == []


async def test_deleting_one_blob_leaves_the_partial_writes_of_others(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    other = store.partial / "art_cutter.0a0b0c"  # another blob's write in progress
    other.write_bytes(b"y")
    await store.put("art_cut", b"z" * 10)
    await store.delete("art_cut")
    assert other.exists()
    assert await store.get("art_cut") is None
