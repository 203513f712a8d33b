"""What the database says about storage keys, for the tests of the delete outbox and upload intents."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lapse.db.models import BlobTombstone, File, UploadIntent
from lapse.db.session import reading


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
