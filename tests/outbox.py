"""What the database says about storage keys, for the tests of the delete outbox and upload intents."""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.pool import NullPool

from lapse.db.base import utc_now
from lapse.db.models import BlobTombstone, File, UploadIntent
from lapse.db.session import create_engine, reading


@dataclass(frozen=True, slots=True)
class Keys:
    files: set[str]
    intents: set[str]
    tombstones: set[str]


async def keys(sessions: async_sessionmaker[AsyncSession]) -> Keys:
    async with reading(sessions) as session:
        files = set((await session.execute(select(File.storage_key))).scalars())
        intents = set((await session.execute(select(UploadIntent.storage_key))).scalars())
        tombstones = set((await session.execute(select(BlobTombstone.storage_key))).scalars())
    return Keys(files=files, intents=intents, tombstones=tombstones)


async def intent(sessions: async_sessionmaker[AsyncSession], key: str) -> UploadIntent | None:
    async with reading(sessions) as session:
        return await session.get(UploadIntent, key)


async def age_intents(database_url: str, by: timedelta) -> None:
    """Move every upload intent's heartbeat `by` into the past, behind the server's back: its process died then."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(update(UploadIntent).values(heartbeat_at=utc_now() - by))
    finally:
        await engine.dispose()
