"""The small-file cache: bounded in bytes, least recently used dropped first, large files never kept; and a
download of a cached file still answers by its row (a deleted file is gone even with its bytes in memory)."""

import httpx
import pytest

from lapse.batch_thread import BatchThread
from lapse.storage.base import BlobStat
from lapse.storage.small_cache import ENTRY_OVERHEAD, SmallFileCache
from tests.helpers import ApiClient


def small(size: int) -> BlobStat:
    return BlobStat(size=size, body=b"x" * size)


def test_bounded_in_bytes_least_recently_used_first() -> None:
    cache = SmallFileCache(max_bytes=250 + 3 * ENTRY_OVERHEAD)
    a, b, c = small(100), small(100), small(100)
    cache.keep("a", a)
    cache.keep("b", b)
    assert cache.get("a") is a  # a is now the most recently used
    cache.keep("c", c)  # 300 bytes > 250: b goes
    assert cache.get("b") is None
    assert cache.get("a") is a
    assert cache.get("c") is c


def test_large_files_and_oversized_bodies_are_not_kept() -> None:
    cache = SmallFileCache(max_bytes=50 + ENTRY_OVERHEAD)
    cache.keep("big", BlobStat(size=10**9))  # a blob too large to have been read whole
    assert cache.get("big") is None
    cache.keep("huge", small(51))
    assert cache.get("huge") is None


def test_empty_and_tiny_files_are_bounded_too() -> None:
    """Each entry's own footprint counts: 0-byte files cannot fill memory without bound."""
    cache = SmallFileCache(max_bytes=100 * ENTRY_OVERHEAD)
    for i in range(10_000):
        cache.keep(f"key{i}", small(i % 2))
    kept = [i for i in range(10_000) if cache.get(f"key{i}") is not None]
    assert 50 <= len(kept) <= 100
    assert kept == list(range(10_000 - len(kept), 10_000))  # the most recent ones


@pytest.mark.anyio
async def test_a_hot_small_file_is_read_once_and_a_deleted_one_is_gone(
    alice: ApiClient, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real = BatchThread.run

    async def counted(self: BatchThread, work):  # type: ignore[no-untyped-def]
        if self._thread.name == "lapse-files":
            reads.append(1)
        return await real(self, work)

    monkeypatch.setattr(BatchThread, "run", counted)
    link = await alice.share(b"hot bytes")
    for _ in range(3):
        response = await http.get(link["path"])
        assert response.content == b"hot bytes"
        http.cookies.clear()
    assert len(reads) == 1
    assert (await alice.request("DELETE", f"/api/v1/files/{link['file_id']}")).status_code == 204
    assert (await http.get(link["path"])).status_code == 410
