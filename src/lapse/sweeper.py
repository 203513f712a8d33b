"""The sweeper: deletes files that no live link has needed for a while, orphan blobs and stale temp files.

Rows go first and are committed, then bytes (a crash in between leaves only an orphan blob, which the next pass
removes). Every replica may sweep at once: on PostgreSQL an advisory lock lets one pass delete rows at a time,
on SQLite `BEGIN IMMEDIATE` serialises them, and deleting a blob twice is harmless. On one host, one worker sweeps
(`run_periodically` takes a file lock in the data folder); the others stand by in case it stops.

A pass never holds the write lock across a scan: it reads the candidates in a transaction that only reads (on
SQLite, WAL readers never block the writer), then deletes them DELETE_BATCH at a time, each batch in a short
write transaction of its own that re-checks every file. A backlog is cleared in one pass, batch after batch,
with the event loop and other writers served in between.

A link made for a file at the instant the sweeper deletes it must not end up detached (201, then 410): on
PostgreSQL the sweeper holds the rows it means to delete and re-checks each in its DELETE, while link creation
holds the file's row (`FileRepository.get_to_link`); whichever holds it first wins, and the other sees that.
"""

import asyncio
import contextlib
import fcntl
import logging
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lapse import metrics
from lapse.db.base import utc_now
from lapse.db.session import reading
from lapse.files.repository import FileRepository
from lapse.storage import Storage

logger = logging.getLogger("lapse.sweeper")

ADVISORY_LOCK_ID = 0x1A95E  # any constant shared by every replica
SCAN_BATCH = 1000  # candidates read at a time, holding nothing
DELETE_BATCH = 50  # files deleted per write transaction: each holds SQLite's write lock for a few milliseconds
# A blob or temp file younger than this may belong to an upload still in flight (blob written, row not yet
# committed); a temp file's mtime moves with every write, so only abandoned uploads get this old.
STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SweepReport:
    files: int
    orphans: int
    temp_files: int


async def sweep_once(
    sessions: async_sessionmaker[AsyncSession],
    storage: Storage,
    *,
    grace: timedelta,
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> SweepReport:
    now = now or utc_now()
    cutoff = now - grace
    files = 0
    after = ""
    while True:
        async with reading(sessions) as session:
            candidates = await FileRepository(session).abandoned_ids(cutoff=cutoff, after=after, limit=SCAN_BATCH)
        for start in range(0, len(candidates), DELETE_BATCH):
            keys = await _delete_batch(sessions, candidates[start : start + DELETE_BATCH], cutoff=cutoff)
            if keys is None:  # another replica holds the sweep: it will delete these
                return SweepReport(files=files, orphans=0, temp_files=0)
            for key in keys:  # the rows are committed: now the bytes
                await storage.delete(key)
            files += len(keys)
            metrics.SWEPT_FILES.inc(len(keys))
        if len(candidates) < SCAN_BATCH:
            break
        after = candidates[-1]

    async with sessions() as session, session.begin():
        known = await FileRepository(session).storage_keys()
    orphans = temps = 0
    for blob in await storage.list_blobs():
        if blob.modified_at > now - stale_after or blob.key in known:
            continue
        await storage.delete(blob.key)
        if blob.temporary:
            temps += 1
        else:
            orphans += 1
    metrics.SWEPT_BLOBS.inc(orphans + temps)
    report = SweepReport(files=files, orphans=orphans, temp_files=temps)
    if report != SweepReport(0, 0, 0):
        logger.info("sweep.done files=%d orphans=%d temp_files=%d", report.files, report.orphans, report.temp_files)
    return report


async def _delete_batch(
    sessions: async_sessionmaker[AsyncSession], file_ids: Sequence[str], *, cutoff: datetime
) -> list[str] | None:
    """Delete those of `file_ids` still abandoned, in one short write transaction; their storage keys, or None
    when another replica is sweeping."""
    deleted: list[str] = []
    async with sessions() as session, session.begin():
        if not await _take_lock(session):
            return None
        repo = FileRepository(session)
        for file in await repo.hold_abandoned(file_ids, cutoff=cutoff):
            if await repo.delete_if_abandoned(file.id, cutoff=cutoff):
                deleted.append(file.storage_key)
    return deleted


async def _take_lock(session: AsyncSession) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True
    result = await session.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
    return bool(result.scalar_one())


async def run_periodically(
    sessions: async_sessionmaker[AsyncSession],
    storage: Storage,
    *,
    interval: timedelta,
    grace: timedelta,
    lock_path: Path,
) -> None:
    """The lifespan's background task, in every worker; only the one holding `lock_path` sweeps. Jitter keeps
    replicas from sweeping in lockstep."""
    with _host_lock(lock_path) as held:
        while True:
            await asyncio.sleep(interval.total_seconds() * random.uniform(0.8, 1.2))  # noqa: S311 - not crypto
            if not held():
                continue
            try:
                await sweep_once(sessions, storage, grace=grace)
            except Exception:  # a failed pass (database away, disk error) must not end the loop
                logger.exception("sweep.failed")


@contextlib.contextmanager
def _host_lock(path: Path) -> Iterator[Callable[[], bool]]:
    """`held()` tries for the lock (an flock, released when the process ends, however it ends) until it has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    have = False

    def held() -> bool:
        nonlocal have
        if not have:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                have = True
            except BlockingIOError:
                pass
        return have

    try:
        yield held
    finally:
        os.close(fd)  # lets go of the lock
