"""All SQL about links, including the one statement that redeems a download."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lapse.db.models import File, Link
from lapse.pagination import page


class LinkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, link: Link) -> Link:
        self.session.add(link)
        await self.session.flush()
        return link

    async def get(self, link_id: str, *, owner_id: str | None) -> Link | None:
        stmt = select(Link).where(Link.id == link_id)
        if owner_id is not None:
            stmt = stmt.where(Link.owner_id == owner_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def reload(self, link_id: str) -> Link | None:
        """The link as the database has it now, refreshing the copy this session may already hold."""
        stmt = select(Link).where(Link.id == link_id).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def page(
        self, *, owner_id: str | None, file_id: str | None, cursor: str | None, limit: int
    ) -> Sequence[Link]:
        stmt = select(Link)
        if owner_id is not None:
            stmt = stmt.where(Link.owner_id == owner_id)
        if file_id is not None:
            stmt = stmt.where(Link.file_id == file_id)
        stmt = page(stmt, created_at=Link.created_at, row_id=Link.id, cursor=cursor, limit=limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def find_by_token(self, token_hash: str) -> tuple[Link, File | None] | None:
        stmt = select(Link, File).outerjoin(File, File.id == Link.file_id).where(Link.token_hash == token_hash)
        row = (await self.session.execute(stmt)).one_or_none()
        return None if row is None else (row[0], row[1])

    async def redeem(self, link_id: str, now: datetime) -> int | None:
        """Count one download if, at this instant, the link may still give one; None if it may not.

        The whole rule is in the WHERE clause of one UPDATE: the database serialises concurrent redemptions
        (SQLite's write lock; PostgreSQL re-checks the WHERE on the newest row version), so at most
        max_downloads of them ever succeed, whatever the number of processes or replicas.
        """
        stmt = (
            update(Link)
            .where(
                Link.id == link_id,
                Link.file_id.is_not(None),
                Link.revoked_at.is_(None),
                Link.expires_at > now,
                or_(Link.max_downloads.is_(None), Link.downloads < Link.max_downloads),
            )
            .values(
                downloads=Link.downloads + 1,
                exhausted_at=case((Link.downloads + 1 == Link.max_downloads, now), else_=Link.exhausted_at),
            )
            .returning(Link.downloads)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def update(self, link_id: str, **values: Any) -> None:
        await self.session.execute(
            update(Link).where(Link.id == link_id).values(**values).execution_options(synchronize_session=False)
        )

    async def revoke(self, link_id: str, now: datetime) -> None:
        stmt = update(Link).where(Link.id == link_id, Link.revoked_at.is_(None)).values(revoked_at=now)
        await self.session.execute(stmt.execution_options(synchronize_session=False))
