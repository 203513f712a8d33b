"""The sweeper: deletes files that no live link has needed for a while, and makes sure nothing is left behind in
storage: no blob without a row, no unfinished upload whose process died.

Four passes, each safe on every replica at once:

1. Rows. Abandoned files are deleted, each with a tombstone for its blob (`blob_tombstones`, the delete outbox) in
   the same transaction. On PostgreSQL an advisory lock lets one pass delete rows at a time, on SQLite
   `BEGIN IMMEDIATE` serialises them.
2. Stale upload intents. An upload commits an intent naming its key before its first byte and bumps its heartbeat
   while bytes flow; an intent whose heartbeat is older than `stale_after` belongs to a process that died. It is
   turned into a tombstone (one transaction, so an upload finishing at that instant either got there first or
   gives up), and the storage under its key aborted: an unfinished multipart upload, a temp file, the blob.
3. Tombstones. Whatever each due tombstone's key holds is removed (`abandon`: the blob, and an unfinished upload,
   since a tombstone may stand for an upload whose abort failed; a missing one is fine), then the tombstone; a
   removal that fails leaves it for the next pass. A crash between a row's DELETE and its blob's loses nothing.
4. The safety net: a listing of the whole storage, page by page, each page checked against the database with one
   query. It deletes only what no file, intent or tombstone names and that is older than `orphan_age` (what an
   older version, a restored backup or a lost tombstone left). It is rare and runs on one replica: a lease row
   (`leases`) taken by a conditional upsert names who lists, and nobody lists again before `scan_every` has passed.

A pass never holds the write lock across a scan or a storage request: it reads candidates in a transaction that
only reads (on SQLite, WAL readers never block the writer), and writes in short transactions of their own, a few
rows at a time. On one host, one worker sweeps (`run_periodically` takes a file lock in the data folder); the
others stand by in case it stops.

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
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lapse import metrics
from lapse.db.base import utc_now
from lapse.db.leases import LeaseRepository
from lapse.db.session import reading, transaction
from lapse.errors import Unavailable
from lapse.files.repository import FileRepository, IntentRepository, TombstoneRepository, known_keys
from lapse.storage import Storage

logger = logging.getLogger("lapse.sweeper")

ADVISORY_LOCK_ID = 0x1A95E  # any constant shared by every replica
SCAN_BATCH = 1000  # candidates read at a time, holding nothing
DELETE_BATCH = 50  # files deleted per write transaction: each holds SQLite's write lock for a few milliseconds
OUTBOX_BATCH = 500  # intents or tombstones taken at a time
# An upload bumps its intent's heartbeat every minute while bytes flow: one silent for an hour has no process left.
STALE_AFTER = timedelta(hours=1)
# The safety net never touches anything younger: whatever an upload or a delete in flight may hold is far younger.
ORPHAN_AGE = timedelta(hours=24)
SCAN_EVERY = timedelta(hours=6)  # the safety net's listing, across all replicas
SAFETY_NET = "sweeper.safety_net"  # its lease's name
HOLDER = f"{socket.gethostname()}:{os.getpid()}"  # who holds a lease: this process


@dataclass(frozen=True, slots=True)
class SweepReport:
    files: int  # abandoned files deleted
    orphans: int = 0  # blobs the safety net deleted
    temp_files: int = 0  # unfinished uploads the safety net deleted
    intents: int = 0  # stale uploads aborted
    tombstones: int = 0  # blobs deleted from the outbox
    scanned: bool = False  # whether this pass held the safety net's lease and listed


async def sweep_once(
    sessions: async_sessionmaker[AsyncSession],
    storage: Storage,
    *,
    grace: timedelta,
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
    orphan_age: timedelta = ORPHAN_AGE,
    scan_every: timedelta = SCAN_EVERY,
    holder: str = HOLDER,
) -> SweepReport:
    now = now or utc_now()
    files = await _sweep_rows(sessions, now=now, cutoff=now - grace)
    intents = await _abort_stale_intents(sessions, storage, now=now, before=now - stale_after)
    tombstones = await _empty_outbox(sessions, storage, now=now)
    orphans = temps = 0
    async with transaction(sessions) as session:
        scanned = await LeaseRepository(session).take(SAFETY_NET, holder=holder, now=now, until=now + scan_every)
    if scanned:
        orphans, temps = await _safety_net(sessions, storage, older_than=now - orphan_age)
    report = SweepReport(files, orphans, temps, intents, tombstones, scanned)
    if (files, orphans, temps, intents, tombstones) != (0, 0, 0, 0, 0):
        logger.info(
            "sweep.done files=%d intents=%d tombstones=%d orphans=%d temp_files=%d",
            files,
            intents,
            tombstones,
            orphans,
            temps,
        )
    return report


async def _sweep_rows(sessions: async_sessionmaker[AsyncSession], *, now: datetime, cutoff: datetime) -> int:
    """Delete abandoned files, a batch per short transaction, tombstoning their blobs; how many."""
    files = 0
    after = ""
    while True:
        async with reading(sessions) as session:
            candidates = await FileRepository(session).abandoned_ids(cutoff=cutoff, after=after, limit=SCAN_BATCH)
        for start in range(0, len(candidates), DELETE_BATCH):
            keys = await _delete_batch(sessions, candidates[start : start + DELETE_BATCH], cutoff=cutoff, now=now)
            if keys is None:  # another replica holds the sweep: it will delete these
                return files
            files += len(keys)
            metrics.SWEPT_FILES.inc(len(keys))
        if len(candidates) < SCAN_BATCH:
            return files
        after = candidates[-1]


async def _abort_stale_intents(
    sessions: async_sessionmaker[AsyncSession], storage: Storage, *, now: datetime, before: datetime
) -> int:
    """Abort the storage of uploads whose heartbeat stopped before `before`; how many. Each intent becomes a
    tombstone first, so a crash or a storage error here leaves the key to the tombstone pass."""
    aborted = 0
    while True:
        async with transaction(sessions) as session:
            keys = await IntentRepository(session).take_stale(before=before, now=now, limit=OUTBOX_BATCH)
        done = await _abandon(sessions, storage, keys)
        aborted += done
        metrics.SWEPT_INTENTS.inc(done)
        if len(keys) < OUTBOX_BATCH:
            return aborted


async def _empty_outbox(sessions: async_sessionmaker[AsyncSession], storage: Storage, *, now: datetime) -> int:
    """Remove what the keys of due tombstones hold, then the tombstones; how many. `abandon` rather than `delete`:
    a tombstone may stand for an upload (a stale intent, or one the store cut off) whose abort failed, and its
    unfinished multipart upload must go too."""
    deleted = 0
    after = ""
    while True:
        async with reading(sessions) as session:
            keys = await TombstoneRepository(session).due(now=now, after=after, limit=OUTBOX_BATCH)
        done = await _abandon(sessions, storage, keys)
        deleted += done
        metrics.SWEPT_TOMBSTONES.inc(done)
        if len(keys) < OUTBOX_BATCH:
            return deleted
        after = keys[-1]


async def _abandon(sessions: async_sessionmaker[AsyncSession], storage: Storage, keys: Sequence[str]) -> int:
    """Remove what each tombstoned key holds, then the tombstones of those removed (one short transaction); how
    many. A key the storage failed on keeps its tombstone for the next pass."""
    done = [key for key in keys if await _try(storage.abandon, key)]
    async with transaction(sessions) as session:
        await TombstoneRepository(session).remove(done)
    return len(done)


async def _safety_net(
    sessions: async_sessionmaker[AsyncSession], storage: Storage, *, older_than: datetime
) -> tuple[int, int]:
    """Delete what the storage holds that nothing in the database names and that is older than `older_than`;
    (blobs, unfinished uploads) deleted. One page of the listing in memory at a time."""
    orphans = temps = 0
    async for page in storage.scan():
        async with reading(sessions) as session:
            known = await known_keys(session, [blob.key for blob in page])
        for blob in page:
            if blob.key in known or blob.modified_at >= older_than:
                continue
            if not await _try(storage.abandon if blob.temporary else storage.delete, blob.key):
                continue
            if blob.temporary:
                temps += 1
            else:
                orphans += 1
    metrics.SWEPT_BLOBS.inc(orphans + temps)
    return orphans, temps


async def _try(action: Callable[[str], Awaitable[None]], key: str) -> bool:
    """Run a storage action on `key`; False (logged) when the storage is away: the next pass tries again."""
    try:
        await action(key)
    except Unavailable:
        logger.warning("sweep.storage_failed storage_key=%s", key)
        return False
    return True


async def _delete_batch(
    sessions: async_sessionmaker[AsyncSession], file_ids: Sequence[str], *, cutoff: datetime, now: datetime
) -> list[str] | None:
    """Delete those of `file_ids` still abandoned, tombstoning their blobs, in one short write transaction; their
    storage keys, or None when another replica is sweeping."""
    deleted: list[str] = []
    async with sessions() as session, session.begin():
        if not await _take_lock(session):
            return None
        repo = FileRepository(session)
        for file in await repo.hold_abandoned(file_ids, cutoff=cutoff):
            if (key := await repo.delete_if_abandoned(file.id, cutoff=cutoff, now=now)) is not None:
                deleted.append(key)
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
