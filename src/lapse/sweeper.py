"""The sweeper: deletes files that no live link has needed for a while, orphan blobs and stale temp files.

Rows go first and are committed, then bytes (a crash in between leaves only an orphan blob, which the next pass
removes). Every replica may sweep at once: on PostgreSQL an advisory lock lets one pass delete rows at a time,
on SQLite `BEGIN IMMEDIATE` serialises them, and deleting a blob twice is harmless.

A link made for a file at the instant the sweeper deletes it must not end up detached (201, then 410): on
PostgreSQL the sweeper holds the rows it means to delete and re-checks each in its DELETE, while link creation
holds the file's row (`FileRepository.get_to_link`); whichever holds it first wins, and the other sees that.
"""

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lapse.db.base import utc_now
from lapse.files.repository import FileRepository
from lapse.storage import Storage

logger = logging.getLogger("lapse.sweeper")

ADVISORY_LOCK_ID = 0x1A95E  # any constant shared by every replica
BATCH = 500
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
    deleted_keys: list[str] = []
    async with sessions() as session, session.begin():
        if await _take_lock(session):
            repo = FileRepository(session)
            cutoff = now - grace
            for file in await repo.abandoned(cutoff=cutoff, limit=BATCH):
                if await repo.delete_if_abandoned(file.id, cutoff=cutoff):
                    deleted_keys.append(file.storage_key)
    for key in deleted_keys:
        await storage.delete(key)

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
    report = SweepReport(files=len(deleted_keys), orphans=orphans, temp_files=temps)
    if report != SweepReport(0, 0, 0):
        logger.info("sweep.done files=%d orphans=%d temp_files=%d", report.files, report.orphans, report.temp_files)
    return report


async def _take_lock(session: AsyncSession) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True
    result = await session.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
    return bool(result.scalar_one())


async def run_periodically(
    sessions: async_sessionmaker[AsyncSession], storage: Storage, *, interval: timedelta, grace: timedelta
) -> None:
    """The lifespan's background task. Jitter keeps several workers from sweeping in lockstep."""
    while True:
        await asyncio.sleep(interval.total_seconds() * random.uniform(0.8, 1.2))  # noqa: S311 - not crypto
        try:
            await sweep_once(sessions, storage, grace=grace)
        except Exception:  # a failed pass (database away, disk error) must not end the loop
            logger.exception("sweep.failed")
