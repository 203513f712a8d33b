"""The small-file cache: bounded in bytes, least recently used dropped first, large files never kept; and a
download of a cached file still answers by its row (a deleted file is gone even with its bytes in memory)."""

import os
from pathlib import Path

import httpx
import pytest

from lapse.batch_thread import BatchThread
from lapse.storage.small_cache import SmallFileCache
from tests.helpers import ApiClient


def kept(tmp_path: Path, key: str, size: int) -> tuple[str, Path, tuple[os.stat_result, bytes]]:
    path = tmp_path / key
    path.write_bytes(b"x" * size)
    return key, path, (path.stat(), path.read_bytes())


def test_bounded_in_bytes_least_recently_used_first(tmp_path: Path) -> None:
    cache = SmallFileCache(max_bytes=250)
    a, b, c = (kept(tmp_path, key, 100) for key in "abc")
    cache.keep(*a)
    cache.keep(*b)
    assert cache.get("a") == (a[1], *a[2])  # a is now the most recently used
    cache.keep(*c)  # 300 bytes > 250: b goes
    assert cache.get("b") is None
    assert cache.get("a") == (a[1], *a[2])
    assert cache.get("c") == (c[1], *c[2])


def test_large_files_and_oversized_bodies_are_not_kept(tmp_path: Path) -> None:
    cache = SmallFileCache(max_bytes=50)
    key, path, (stat, _) = kept(tmp_path, "big", 10)
    cache.keep(key, path, (stat, None))  # a file too large to have been read whole
    assert cache.get("big") is None
    cache.keep(*kept(tmp_path, "huge", 51))
    assert cache.get("huge") is None


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
