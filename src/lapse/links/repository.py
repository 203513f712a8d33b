"""All SQL about links, including the one statement that redeems a download.

The statements the download path runs on its raw connections (links.redeemer) are module constants here, written
once: the repository runs them through the ORM, the redeemer the same statements compiled for its driver.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, bindparam, case, func, insert, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lapse.db.base import UTCDateTime
from lapse.db.models import File, Link
from lapse.db.rows import loaded
from lapse.pagination import page

_NOW = bindparam("now", type_=UTCDateTime())
_ONE = literal_column("1", Integer())

# A link and its file (None once deleted) by token hash.
FIND_BY_TOKEN = (
    select(Link, File).outerjoin(File, File.id == Link.file_id).where(Link.token_hash == bindparam("token_hash"))
)
GET = select(Link).where(Link.id == bindparam("link_id"))
# Exactly-k: the whole rule is the WHERE clause of this one UPDATE. The database serialises concurrent redemptions
# (SQLite's write lock; PostgreSQL re-checks the WHERE on the newest row version once a concurrent UPDATE commits),
# so at most max_downloads of them ever succeed, whatever the number of processes or replicas.
REDEEM = (
    update(Link)
    .where(
        Link.id == bindparam("link_id"),
        Link.file_id.is_not(None),
        Link.revoked_at.is_(None),
        Link.expires_at > _NOW,
        or_(Link.max_downloads.is_(None), Link.downloads < Link.max_downloads),
    )
    .values(
        downloads=Link.downloads + _ONE,
        exhausted_at=case((Link.downloads + _ONE == Link.max_downloads, _NOW), else_=Link.exhausted_at),
    )
    .returning(Link.downloads)
)
LINK_COLUMNS = tuple(Link.__table__.columns.keys())
INSERT = insert(Link).values({c.name: bindparam(c.name, type_=c.type) for c in Link.__table__.columns})


class LinkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, row: dict[str, Any]) -> Link:
        """Store a new link from every one of its columns (links.service.NewLink.row); the link, detached."""
        await self.session.execute(INSERT, row)
        return loaded(Link, row)

    async def get(self, link_id: str, *, owner_id: str | None) -> Link | None:
        stmt = GET
        if owner_id is not None:
            stmt = stmt.where(Link.owner_id == owner_id)
        return (await self.session.execute(stmt, {"link_id": link_id})).scalar_one_or_none()

    async def page(
        self, *, owner_id: str | None, file_id: str | None, cursor: str | None, limit: int
    ) -> Sequence[Link]:
        stmt = page_statement(owner_id=owner_id, file_id=file_id, cursor=cursor, limit=limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def newest_per_file(
        self, file_ids: Sequence[str], *, owner_id: str | None, limit: int
    ) -> dict[str, list[Link]]:
        """The newest `limit` links of each file (newest first), in one query for a page of files."""
        newest: dict[str, list[Link]] = {file_id: [] for file_id in file_ids}
        if file_ids:
            stmt = newest_per_file_statement(file_ids, owner_id=owner_id, limit=limit)
            for link in (await self.session.execute(stmt)).scalars():
                if link.file_id is not None:  # always, by the query: the column is nullable for deleted files
                    newest[link.file_id].append(link)
        return newest

    async def find_by_token(self, token_hash: str) -> tuple[Link, File | None] | None:
        row = (await self.session.execute(FIND_BY_TOKEN, {"token_hash": token_hash})).one_or_none()
        return None if row is None else (row[0], row[1])

    async def redeem(self, link_id: str, now: datetime) -> int | None:
        """Count one download if, at this instant, the link may still give one; None if it may not (`REDEEM`)."""
        stmt = REDEEM.execution_options(synchronize_session=False)
        return (await self.session.execute(stmt, {"link_id": link_id, "now": now})).scalar_one_or_none()

    async def update(self, link_id: str, **values: Any) -> None:
        await self.session.execute(
            update(Link).where(Link.id == link_id).values(**values).execution_options(synchronize_session=False)
        )

    async def revoke(self, link_id: str, now: datetime) -> None:
        stmt = update(Link).where(Link.id == link_id, Link.revoked_at.is_(None)).values(revoked_at=now)
        await self.session.execute(stmt.execution_options(synchronize_session=False))


def page_statement(*, owner_id: str | None, file_id: str | None, cursor: str | None, limit: int) -> Select[Link]:
    """Newest first, after the cursor: a range of one of the (…, created_at, id) indexes (see the models)."""
    stmt = select(Link)
    if owner_id is not None:
        stmt = stmt.where(Link.owner_id == owner_id)
    if file_id is not None:
        stmt = stmt.where(Link.file_id == file_id)
    return page(stmt, created_at=Link.created_at, row_id=Link.id, cursor=cursor, limit=limit)


def newest_per_file_statement(file_ids: Sequence[str], *, owner_id: str | None, limit: int) -> Select[Link]:
    """Each file's newest `limit` links, ranked within the file by a window over its (file_id, created_at, id)
    index; newest first within each file."""
    order = (Link.created_at.desc(), Link.id.desc())
    rank = func.row_number().over(partition_by=Link.file_id, order_by=order).label("rank")
    ranked = select(Link.id, rank).where(Link.file_id.in_(file_ids))
    if owner_id is not None:
        ranked = ranked.where(Link.owner_id == owner_id)
    chosen = ranked.subquery()
    return (
        select(Link).join(chosen, chosen.c.id == Link.id).where(chosen.c.rank <= limit).order_by(Link.file_id, *order)
    )
