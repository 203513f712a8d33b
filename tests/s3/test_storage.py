"""S3Storage against a real Ceph RGW: the storage protocol's contract, object by object."""

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from lapse.errors import TooLarge, Unavailable
from lapse.storage.base import SMALL_BLOB, BlobStat, new_key
from lapse.storage.s3 import CHUNK, S3Storage
from tests.s3.conftest import BUCKET, PART_SIZE, make_storage
from tests.s3.rgw import Rgw, free_port

pytestmark = pytest.mark.anyio


async def stream(data: bytes, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


def objects(s3: Any, prefix: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def unfinished(s3: Any, prefix: str) -> list[str]:
    return [item["Key"] for item in s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])]


async def poll(done: Callable[[], bool]) -> None:
    """Until `done()` holds; failing after 30 seconds."""
    with anyio.fail_after(30):
        while not done():  # noqa: ASYNC110 (the store's state: nothing here to wait on)
            await anyio.sleep(0.05)


async def read(storage: S3Storage, key: str, start: int, end: int) -> bytes:
    blob = await storage.open(key)
    try:
        assert blob.local() is None  # never a local file: sent as a stream
        pieces = [piece async for piece in blob.chunks(start, end)]
    finally:
        blob.close()
    assert all(len(piece) <= CHUNK for piece in pieces)  # read piece by piece, never whole
    return b"".join(pieces)


async def test_a_small_blob_is_stored_stated_with_its_bytes_and_deleted(
    storage: S3Storage, s3: Any, prefix: str
) -> None:
    data = os.urandom(1000)
    stored = await storage.put(new_key(), stream(data, 300), max_size=10_000)
    assert (stored.size, stored.sha256) == (1000, hashlib.sha256(data).hexdigest())
    assert objects(s3, prefix) == [prefix + stored.key]
    assert s3.get_object(Bucket=BUCKET, Key=prefix + stored.key)["Body"].read() == data

    stat = await storage.stat(stored.key)
    assert (stat.size, stat.body) == (1000, data)
    assert await read(storage, stored.key, 10, 19) == data[10:20]

    await storage.delete(stored.key)
    await storage.delete(stored.key)  # idempotent
    assert objects(s3, prefix) == []
    with pytest.raises(Unavailable):  # fail closed: a row whose bytes are gone is refused before counting
        await storage.stat(stored.key)
    with pytest.raises(Unavailable):
        await storage.open(stored.key)


async def test_an_empty_upload_is_a_blob_of_no_bytes(storage: S3Storage) -> None:
    stored = await storage.put(new_key(), stream(b""), max_size=10)
    assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert await storage.stat(stored.key) == BlobStat(size=0, body=b"")


async def test_a_large_blob_goes_up_in_parts_and_reads_back_by_range(storage: S3Storage, s3: Any, prefix: str) -> None:
    data = os.urandom(2 * PART_SIZE + 12345)
    stored = await storage.put(new_key(), stream(data, 256 * 1024), max_size=len(data))
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    head = s3.head_object(Bucket=BUCKET, Key=prefix + stored.key)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    assert unfinished(s3, prefix) == []

    stat = await storage.stat(stored.key)
    assert (stat.size, stat.body) == (len(data), None)  # past SMALL_BLOB: never read whole into memory
    across = (PART_SIZE - 100, PART_SIZE + 99)
    assert await read(storage, stored.key, *across) == data[across[0] : across[1] + 1]
    assert await read(storage, stored.key, len(data) - 1, len(data) - 1) == data[-1:]
    assert await read(storage, stored.key, 0, len(data) - 1) == data


async def test_too_large_keeps_nothing_not_even_an_unfinished_upload(storage: S3Storage, s3: Any, prefix: str) -> None:
    data = os.urandom(PART_SIZE + PART_SIZE // 2)  # the first part is sent before the limit is passed
    with pytest.raises(TooLarge):
        await storage.put(new_key(), stream(data), max_size=PART_SIZE + 1000)
    assert objects(s3, prefix) == []
    assert unfinished(s3, prefix) == []
    with pytest.raises(TooLarge):  # and one that fails before a part was sent
        await storage.put(new_key(), stream(data[:2000]), max_size=1000)
    assert objects(s3, prefix) == []


async def test_a_cancelled_upload_is_aborted(storage: S3Storage, s3: Any, prefix: str) -> None:
    """A client that goes away mid-upload: the request is cancelled, and the parts already sent are dropped."""
    first_part_sent = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        async for piece in stream(os.urandom(PART_SIZE + 1)):
            yield piece
        first_part_sent.set()  # the part was handed over (it travels while the next is received)
        await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: storage.put(new_key(), stalls(), max_size=10 * PART_SIZE))
        await first_part_sent.wait()
        await poll(lambda: len(unfinished(s3, prefix)) == 1)  # the upload exists, unfinished
        group.cancel_scope.cancel()
    assert unfinished(s3, prefix) == []
    assert objects(s3, prefix) == []


async def test_a_failing_body_aborts_the_upload(storage: S3Storage, s3: Any, prefix: str) -> None:
    async def breaks() -> AsyncIterator[bytes]:
        async for piece in stream(os.urandom(PART_SIZE + 10)):
            yield piece
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await storage.put(new_key(), breaks(), max_size=10 * PART_SIZE)
    assert unfinished(s3, prefix) == []
    assert objects(s3, prefix) == []


async def test_scan_pages_through_the_prefix_and_only_names_ours(rgw: Rgw, aws_env: None, s3: Any, prefix: str) -> None:
    storage = make_storage(rgw, prefix, list_page_size=2)
    try:
        keys = {(await storage.put(new_key(), stream(b"x" * n), max_size=100)).key for n in range(5)}
        s3.put_object(Bucket=BUCKET, Key=prefix + "notes.txt", Body=b"not ours")  # never listed, never swept
        s3.put_object(Bucket=BUCKET, Key="elsewhere-" + "a" * 32, Body=b"outside the prefix")
        dangling = new_key()
        s3.create_multipart_upload(Bucket=BUCKET, Key=prefix + dangling)
        pages = [page async for page in storage.scan()]
        assert max(len(page) for page in pages) <= 2
        listed = [blob for page in pages for blob in page]
        assert {blob.key for blob in listed if not blob.temporary} == keys
        assert [blob.key for blob in listed if blob.temporary] == [dangling]
        assert all(blob.modified_at.tzinfo is not None for blob in listed)
    finally:
        s3.delete_object(Bucket=BUCKET, Key="elsewhere-" + "a" * 32)
        await storage.aclose()


async def test_check_is_a_cached_read(rgw: Rgw, aws_env: None, s3: Any, prefix: str) -> None:
    missing = f"lapse-missing-{os.urandom(3).hex()}"
    storage = make_storage(rgw, prefix, bucket=missing, check_ttl=3600)
    fresh = make_storage(rgw, prefix, bucket=missing, check_ttl=0)
    try:
        with pytest.raises(Unavailable):
            await storage.check()
        s3.create_bucket(Bucket=missing)
        await fresh.check()  # asked again: the bucket is there now
        with pytest.raises(Unavailable):
            await storage.check()  # within its time to live, the answer is the one kept
        assert s3.list_objects_v2(Bucket=missing).get("KeyCount", 0) == 0  # a probe never writes
    finally:
        s3.delete_bucket(Bucket=missing)
        await storage.aclose()
        await fresh.aclose()


async def test_a_store_that_does_not_answer_is_unavailable(rgw: Rgw, aws_env: None, prefix: str) -> None:
    storage = make_storage(rgw, prefix, endpoint=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(Unavailable):
            await storage.put(new_key(), stream(b"data"), max_size=100)
        with pytest.raises(Unavailable):
            await storage.put(new_key(), stream(os.urandom(PART_SIZE + 1)), max_size=2 * PART_SIZE)
        for call in (storage.stat, storage.open, storage.delete):
            with pytest.raises(Unavailable):
                await call("a" * 32)
        with pytest.raises(Unavailable):
            await storage.abandon("a" * 32)
        with pytest.raises(Unavailable):
            [page async for page in storage.scan()]
        with pytest.raises(Unavailable):
            await storage.check()
    finally:
        await storage.aclose()


async def test_keys_that_are_not_ours_are_refused(storage: S3Storage) -> None:
    for key in ("../other", "a/b", ""):
        with pytest.raises(ValueError, match="bad storage key"):
            await storage.stat(key)


def test_small_blobs_are_at_most_a_part() -> None:
    assert SMALL_BLOB < PART_SIZE  # stat reads a small blob whole: it is never a multipart object
