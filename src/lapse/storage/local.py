"""Blobs in a local folder: `<root>/<k[:2]>/<key>`, written through a temp file in the same folder."""

import contextlib
import errno
import io
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread

from lapse.batch_thread import BatchThread
from lapse.errors import InsufficientStorage, Unavailable
from lapse.storage.base import SMALL_BLOB, BlobInfo, BlobStat, LocalFile, StoredBlob, is_key
from lapse.storage.blob_writer import BlobWriter
from lapse.storage.pipeline import pump

TEMP_PREFIX = ".tmp-"
CHUNK = 512 * 1024  # what one thread hop reads when a blob is streamed rather than sent zero-copy
SCAN_PAGE = 1000  # blobs per page of a listing (as S3's): one statement checks them, far below its parameter limit


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        # The download path's stats, small reads and opens, batched on one thread (batch_thread says why).
        self.io = BatchThread(name="lapse-files")

    def path(self, key: str) -> Path:
        if not key.isalnum():  # keys are ours (hex); never let anything else name a path
            raise ValueError(f"bad storage key {key!r}")
        return self.root / key[:2] / key

    def _temp_path(self, key: str) -> Path:
        """Where an upload under `key` is written until it is complete."""
        return self.path(key).with_name(TEMP_PREFIX + key)

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, max_size: int) -> StoredBlob:
        final, temp = self.path(key), self._temp_path(key)
        try:
            file = await anyio.to_thread.run_sync(_open_new, temp)
            try:
                writer = BlobWriter(file)
                await pump(chunks, writer, max_size=max_size)
                await anyio.to_thread.run_sync(_sync_and_close, file)
            finally:
                file.close()
            await anyio.to_thread.run_sync(_publish, temp, final)
        except OSError as exc:
            raise _storage_error(exc) from exc
        finally:
            temp.unlink(missing_ok=True)  # sync on purpose: it must run even when the task is being cancelled
        return StoredBlob(key=key, size=writer.size, sha256=writer.digest.hexdigest())

    async def stat(self, key: str) -> BlobStat:
        path = self.path(key)
        try:
            return await self.io.run(lambda: _stat_and_read_small(path))
        except OSError as exc:  # a row without bytes, or no descriptor left: refuse before counting
            raise Unavailable("The file's bytes are not reachable right now.") from exc

    async def open(self, key: str) -> "LocalBlob":
        path = self.path(key)
        try:
            return await self.io.run(lambda: LocalBlob(path))
        except OSError as exc:
            raise Unavailable("The file's bytes are not reachable right now.") from exc

    def accel_path(self, key: str) -> str | None:
        return self.path(key).relative_to(self.root).as_posix()  # nginx aliases its internal location to root

    async def accel_proxy(self, key: str, *, until: datetime, content_type: str) -> str | None:
        return None  # nginx reads the folder itself (accel_path)

    async def presign(self, key: str, *, until: datetime, filename: str, content_type: str) -> str | None:
        return None  # a folder has no URLs of its own

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.io.close)

    async def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        except OSError as exc:  # the sweeper keeps the tombstone and tries again
            raise _storage_error(exc) from exc

    async def abandon(self, key: str) -> None:
        final, temp = self.path(key), self._temp_path(key)

        def remove() -> None:
            temp.unlink(missing_ok=True)
            final.unlink(missing_ok=True)

        try:
            await anyio.to_thread.run_sync(remove)
        except OSError as exc:
            raise _storage_error(exc) from exc

    async def scan(self) -> AsyncIterator[list[BlobInfo]]:
        """A shard folder at a time (keys spread evenly over 256 of them), in pages of at most SCAN_PAGE: the
        sweeper checks each page with one statement, which binds a few parameters per key."""
        shards = await anyio.to_thread.run_sync(self._shards)
        for shard in shards:
            found = await anyio.to_thread.run_sync(_scan_shard, shard)
            for start in range(0, len(found), SCAN_PAGE):
                yield found[start : start + SCAN_PAGE]

    def _shards(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(shard for shard in self.root.iterdir() if shard.is_dir())

    async def check(self) -> None:
        def probe() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            probe_path = self.root / f"{TEMP_PREFIX}readyz-{secrets.token_hex(4)}"
            probe_path.write_bytes(b"ok")
            probe_path.unlink()

        try:
            await anyio.to_thread.run_sync(probe)
        except OSError as exc:
            raise _storage_error(exc) from exc


class LocalBlob:
    """A blob's file, opened (and its stat taken from the open file) before its download is counted: what was
    checked is what is sent, even if the blob is unlinked meanwhile."""

    def __init__(self, path: Path) -> None:
        file = path.open("rb")
        self._local = LocalFile(file=file, path=path, stat=os.fstat(file.fileno()))

    def local(self) -> LocalFile:
        return self._local

    async def chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        fd = self._local.file.fileno()
        position = start
        while position <= end:
            piece = await anyio.to_thread.run_sync(os.pread, fd, min(CHUNK, end - position + 1), position)
            if not piece:
                raise Unavailable("The file ended early.")
            position += len(piece)
            yield piece

    def close(self) -> None:
        self._local.file.close()


def _stat_and_read_small(path: Path) -> BlobStat:
    """The stat and, when small, the bytes: one thread hop for both, from one open file."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > SMALL_BLOB:
            return BlobStat(size=size)
        body = file.read(size + 1)
    return BlobStat(size=size, body=body if len(body) == size else None)  # changed under us: stream it instead


def _scan_shard(shard: Path) -> list[BlobInfo]:
    found: list[BlobInfo] = []
    try:
        entries = list(os.scandir(shard))
    except FileNotFoundError:
        return found
    for entry in entries:
        if not _is_ours(entry.name):
            continue  # not a name we make (an editor's backup, a stray copy): never ours to delete
        try:
            mtime = entry.stat().st_mtime
        except FileNotFoundError:
            continue  # removed while we looked
        temporary = entry.name.startswith(TEMP_PREFIX)
        found.append(
            BlobInfo(
                key=entry.name.removeprefix(TEMP_PREFIX),
                modified_at=datetime.fromtimestamp(mtime, UTC),
                temporary=temporary,
            )
        )
    return found


def _is_ours(name: str) -> bool:
    return is_key(name.removeprefix(TEMP_PREFIX))


def _open_new(path: Path) -> io.FileIO:
    _make_durable_dirs(path.parent)
    return io.FileIO(path, "xb")  # unbuffered: the pipeline gathers writes itself (pipeline.BATCH_SIZE)


def _make_durable_dirs(folder: Path) -> None:
    """mkdir -p, fsyncing each new folder's parent, so a blob's folder entry survives a crash as the blob does."""
    if folder.is_dir():
        return
    _make_durable_dirs(folder.parent)
    with contextlib.suppress(FileExistsError):  # another upload made it first
        folder.mkdir()
        _fsync_dir(folder.parent)


def _sync_and_close(file: io.FileIO) -> None:
    os.fsync(file.fileno())
    file.close()


def _publish(temp: Path, final: Path) -> None:
    """Rename into place, then fsync the folder so the rename itself survives a crash."""
    temp.rename(final)
    _fsync_dir(final.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _storage_error(exc: OSError) -> Unavailable:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage("The server has no room for this upload.", retry_after=60)
    return Unavailable("Storage is not available right now.")
