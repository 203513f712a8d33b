"""All SQL about files."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lapse.db.models import File, Link
from lapse.pagination import page


class FileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, file: File) -> File:
        self.session.add(file)
        await self.session.flush()
        return file

    async def get(self, file_id: str, *, owner_id: str | None) -> File | None:
        """owner_id None: any owner's (admin)."""
        stmt = select(File).where(File.id == file_id)
        if owner_id is not None:
            stmt = stmt.where(File.owner_id == owner_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page(self, *, owner_id: str | None, cursor: str | None, limit: int) -> Sequence[File]:
        stmt = select(File)
        if owner_id is not None:
            stmt = stmt.where(File.owner_id == owner_id)
        stmt = page(stmt, created_at=File.created_at, row_id=File.id, cursor=cursor, limit=limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def delete(self, file_id: str) -> None:
        """Links stay, detached and revoked, so their tokens keep answering 410 rather than 404."""
        await self.session.execute(update(Link).where(Link.file_id == file_id).values(file_id=None))
        await self.session.execute(delete(File).where(File.id == file_id))

    async def storage_keys(self) -> set[str]:
        return set((await self.session.execute(select(File.storage_key))).scalars().all())

    async def abandoned(self, *, cutoff: datetime, limit: int) -> Sequence[File]:
        """Files created before cutoff with no link that was still alive at cutoff."""
        alive_at_cutoff = and_(
            Link.file_id == File.id,
            Link.expires_at > cutoff,
            or_(Link.revoked_at.is_(None), Link.revoked_at > cutoff),
            or_(Link.exhausted_at.is_(None), Link.exhausted_at > cutoff),
        )
        stmt = select(File).where(File.created_at < cutoff, ~exists().where(alive_at_cutoff)).limit(limit)
        return (await self.session.execute(stmt)).scalars().all()
