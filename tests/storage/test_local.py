"""LocalStorage.write: the bytes and sha256 are right however the body is cut (the hash runs beside the writes, or
in line for a small batch), and a failure keeps nothing."""

import errno
import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import pytest

from lapse.db.session import transaction
from lapse.errors import InsufficientStorage, TooLarge
from lapse.files import service as files_service
from lapse.keys import service as keys_service
from lapse.runtime import Runtime
from lapse.storage import blob_writer, new_key
from lapse.storage.local import LocalStorage
from tests.helpers import stored_files
from tests.outbox import Keys, keys

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


class BodyBroke(Exception):
    """A client that goes away mid-body, as ClientDisconnect does."""


async def body(chunks: Sequence[bytes], *, then_fail: bool = False) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    if then_fail:
        raise BodyBroke


PATTERN = os.urandom(3 * MiB + 12345)
CUTS = {
    "one huge chunk": [PATTERN],
    "many tiny chunks": [PATTERN[i : i + 7] for i in range(0, 300_000, 7)],  # > IOV_MAX per batch
    "uneven chunks": [PATTERN[i : i + 65_537] for i in range(0, len(PATTERN), 65_537)],
    "a small file": [PATTERN[:1000], PATTERN[1000:5000]],  # one batch, hashed in line rather than beside
}


@pytest.mark.parametrize("cut", CUTS)
async def test_bytes_and_sha256_survive_any_cut(tmp_path: Path, cut: str) -> None:
    chunks = CUTS[cut]
    expected = b"".join(chunks)
    storage = LocalStorage(tmp_path)
    blob = await storage.put(new_key(), body(chunks), max_size=len(expected))
    assert blob.size == len(expected)
    assert blob.sha256 == hashlib.sha256(expected).hexdigest()
    path = storage.path(blob.key)
    assert path is not None
    assert path.read_bytes() == expected
    assert stored_files(tmp_path) == [path]  # no temp file left beside it


async def test_short_writes_are_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """writev may write less than asked (a signal, a nearly full disk): the rest must still go out, in order."""
    real_writev = os.writev

    def stingy_writev(fd: int, buffers: Sequence[bytes | memoryview]) -> int:
        first = memoryview(buffers[0])
        return real_writev(fd, [first[: max(1, len(first) // 3)]])

    monkeypatch.setattr(os, "writev", stingy_writev)  # blob_writer calls os.writev at run time
    chunks = [PATTERN[:1000], PATTERN[1000:1001], PATTERN[1001:50_000]]
    blob = await LocalStorage(tmp_path).put(new_key(), body(chunks), max_size=MiB)
    path = LocalStorage(tmp_path).path(blob.key)
    assert path is not None
    assert path.read_bytes() == PATTERN[:50_000]


async def test_writeback_is_started_as_the_upload_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """So the final fsync finds little left: every range once, in order, while the body is still arriving."""
    started: list[tuple[int, int]] = []
    monkeypatch.setattr(blob_writer, "start_writeback", lambda fd, offset, length: started.append((offset, length)))
    chunks = [PATTERN[:MiB]] * 20
    await LocalStorage(tmp_path).put(new_key(), body(chunks), max_size=20 * MiB)
    assert started, "no writeback was started before the final fsync"
    assert [offset for offset, _ in started] == [sum(length for _, length in started[:i]) for i in range(len(started))]
    assert all(length >= blob_writer.WRITEBACK_EVERY for _, length in started)
    assert sum(length for _, length in started) <= 20 * MiB


def test_sync_file_range_is_the_real_one_on_linux(tmp_path: Path) -> None:
    assert blob_writer.start_writeback is not blob_writer._no_writeback
    with (tmp_path / "f").open("wb") as file:
        file.write(b"x" * 10_000)
        file.flush()
        blob_writer.start_writeback(file.fileno(), 0, 10_000)  # must not raise


async def test_over_the_cap_mid_stream_keeps_nothing(tmp_path: Path) -> None:
    chunks = [PATTERN[i : i + 100_000] for i in range(0, 3 * MiB, 100_000)]
    with pytest.raises(TooLarge):
        await LocalStorage(tmp_path).put(new_key(), body(chunks), max_size=2 * MiB)
    assert stored_files(tmp_path) == []


async def test_a_body_failing_mid_upload_leaves_no_row_and_no_temp_file(runtime: Runtime) -> None:
    """Past the first batches (so a write is in flight when it breaks): the error surfaces as itself, the temp
    file is gone, and no row was added."""
    async with transaction(runtime.sessions) as session:
        owner, _ = await keys_service.create_key(session, secret=runtime.secret, name="o", admin=False)
    chunks = [PATTERN[i : i + 65_536] for i in range(0, 3 * MiB, 65_536)]
    with pytest.raises(BodyBroke):
        async with transaction(runtime.sessions) as session:
            await files_service.upload(
                session,
                sessions=runtime.sessions,
                storage=runtime.storage,
                owner=owner,
                filename="broken.bin",
                content_type=None,
                chunks=body(chunks, then_fail=True),
                max_size=10 * MiB,
            )
    async with transaction(runtime.sessions) as session:
        assert await files_service.list_files(session, owner=owner, cursor=None, limit=10) == []
    assert await keys(runtime.sessions) == Keys(files=set(), intents=set(), tombstones=set())
    assert stored_files(runtime.settings.data_dir / "blobs") == []


async def test_a_full_disk_mid_upload_is_507_and_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write failing while its batch is hashed beside it: the disk's error is what the caller hears."""

    def full(fd: int, buffers: Sequence[bytes | memoryview]) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(InsufficientStorage):
        await LocalStorage(tmp_path).put(new_key(), body([PATTERN]), max_size=len(PATTERN))
    assert stored_files(tmp_path) == []


async def test_with_every_hashing_thread_busy_a_batch_is_hashed_in_line(tmp_path: Path) -> None:
    taken = 0
    while blob_writer._FREE_HASHERS.acquire(blocking=False):
        taken += 1
    try:
        blob = await LocalStorage(tmp_path).put(new_key(), body([PATTERN]), max_size=len(PATTERN))
    finally:
        for _ in range(taken):
            blob_writer._FREE_HASHERS.release()
    assert taken == blob_writer.HASHERS
    assert blob.sha256 == hashlib.sha256(PATTERN).hexdigest()


async def test_more_uploads_at_once_than_hashing_threads_each_get_their_own_sha256(tmp_path: Path) -> None:
    contents = [os.urandom(2 * MiB + i) for i in range(blob_writer.HASHERS + 3)]
    storage = LocalStorage(tmp_path)
    digests: dict[int, str] = {}

    async def upload(i: int) -> None:
        chunks = [contents[i][at : at + 65_536] for at in range(0, len(contents[i]), 65_536)]
        digests[i] = (await storage.put(new_key(), body(chunks), max_size=len(contents[i]))).sha256

    async with anyio.create_task_group() as group:
        for i in range(len(contents)):
            group.start_soon(upload, i)
    assert digests == {i: hashlib.sha256(content).hexdigest() for i, content in enumerate(contents)}
