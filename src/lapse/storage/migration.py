"""`lapse storage migrate`: copy every file's blob from the local folder to an S3 bucket, under the same key.

The same key, so that switching LAPSE_STORAGE_URL afterwards needs nothing else: each row's `storage_key` names its
object in the bucket as it named its file in the folder.

- Rows are read a page at a time (never all in memory), each page in its own short transaction; no transaction is
  held while bytes travel. Copying only reads the folder and the rows, so the server may keep running.
- Resumable: an object appears under a key only once its upload completed (a single PUT, or a multipart upload
  completed after its last part), and it is completed only when every byte matched the row's size and sha256. So
  an object already there with the row's size is skipped; an interrupted upload leaves no object, only an
  incomplete multipart upload that a rerun does not see (a bucket lifecycle rule removes those). With `verify`, an
  object already there is read back and its sha256 compared too (for a bucket something else may have written to);
  one that differs is copied again.
- Verified: the sha256 is computed while the bytes go up, and a mismatch raises from the byte stream before the
  upload completes, which aborts it: a damaged local blob never becomes an object.
"""

import contextlib
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lapse.db.session import transaction
from lapse.errors import TooLarge
from lapse.files.repository import FileRepository
from lapse.pagination import encode_cursor
from lapse.storage.local import LocalStorage
from lapse.storage.s3 import S3Storage

PAGE_SIZE = 200  # rows read per transaction
CHUNK = 1024 * 1024  # one read of a local blob


@dataclass(frozen=True, slots=True)
class Blob:
    """What a files row says about its blob."""

    file_id: str
    name: str
    size: int
    sha256: str
    key: str
    created_at: datetime


@dataclass(slots=True)
class Report:
    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0  # already in the bucket with the row's size (and, when verified, its sha256)
    replaced: int = 0  # already in the bucket, but with other bytes: copied again (among `copied`)
    missing: list[Blob] = field(default_factory=list)  # no local blob for the row (nothing to copy)
    damaged: list[Blob] = field(default_factory=list)  # the local bytes differ from the row's size or sha256
    unreadable: list[tuple[Blob, str]] = field(default_factory=list)  # the local blob could not be read: why


class Damaged(Exception):
    """The local bytes are not the file's: raised from the byte stream, so the upload is aborted."""


async def blobs(sessions: async_sessionmaker[AsyncSession], *, page_size: int = PAGE_SIZE) -> AsyncIterator[Blob]:
    """Every file's blob, newest first, a page at a time (files added meanwhile are the next run's)."""
    cursor: str | None = None
    while True:
        async with transaction(sessions) as session:
            rows = await FileRepository(session).page(owner_id=None, cursor=cursor, limit=page_size)
            page = [Blob(f.id, f.name, f.size, f.sha256, f.storage_key, f.created_at) for f in rows[:page_size]]
        for blob in page:
            yield blob
        if len(rows) <= page_size:
            return
        cursor = encode_cursor(page[-1].created_at, page[-1].file_id)


async def totals(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """How many files and bytes there are to look at (for the progress bar), read the same paged way."""
    count = size = 0
    async for blob in blobs(sessions):
        count += 1
        size += blob.size
    return count, size


async def copy_all(
    sessions: async_sessionmaker[AsyncSession],
    source: LocalStorage,
    target: S3Storage,
    *,
    on_bytes: Callable[[int], None],
    verify: bool = False,
) -> Report:
    """Copy what the bucket lacks. A store failure (Unavailable) stops the run: rerunning resumes it."""
    report = Report()
    async for blob in blobs(sessions):
        there = await target.size(blob.key)
        if there == blob.size:
            if not verify or await _object_sha256(target, blob) == blob.sha256:
                report.skipped += 1
                on_bytes(blob.size)
                continue
            report.replaced += 1
        try:
            file = await anyio.to_thread.run_sync(_open, source.path(blob.key))
        except FileNotFoundError:
            report.missing.append(blob)
            on_bytes(blob.size)
            continue
        except OSError as exc:  # a folder, no permission, a disk error: this blob cannot go, the others can
            report.unreadable.append((blob, exc.strerror or type(exc).__name__))
            on_bytes(blob.size)
            continue
        sent = 0

        def counted(n: int) -> None:
            nonlocal sent
            sent += n
            on_bytes(n)

        try:
            async with contextlib.aclosing(_verified(file, blob, counted)) as chunks:
                await target.put(blob.key, chunks, max_size=blob.size)
        except (Damaged, TooLarge):
            report.damaged.append(blob)
            on_bytes(blob.size - sent)
            if there is not None:  # an object of another size under its key: not this file's either
                await target.delete(blob.key)
            continue
        except OSError as exc:  # reading the local blob failed part-way (the store's errors are Unavailable)
            report.unreadable.append((blob, exc.strerror or type(exc).__name__))
            on_bytes(blob.size - sent)
            continue
        report.copied += 1
        report.copied_bytes += blob.size
    return report


async def _object_sha256(target: S3Storage, blob: Blob) -> str:
    digest = hashlib.sha256()
    if blob.size:
        opened = await target.open(blob.key)
        try:
            async for chunk in opened.chunks(0, blob.size - 1):
                digest.update(chunk)
        finally:
            opened.close()
    return digest.hexdigest()


def _open(path: Path) -> BinaryIO:
    return path.open("rb")


async def _verified(file: BinaryIO, blob: Blob, on_bytes: Callable[[int], None]) -> AsyncGenerator[bytes, None]:
    """The local bytes; after the last one, Damaged unless they are exactly the row's (size and sha256)."""
    digest = hashlib.sha256()
    size = 0
    try:
        while chunk := await anyio.to_thread.run_sync(file.read, CHUNK):
            digest.update(chunk)
            size += len(chunk)
            on_bytes(len(chunk))
            yield chunk
    finally:
        file.close()
    if size != blob.size or digest.hexdigest() != blob.sha256:
        raise Damaged(blob.file_id)
