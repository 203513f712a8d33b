"""Storing a new link: check the file may be linked by its caller, insert the row, in one transaction.

On SQLite this is one job on the redeemer's group-committing writer (db.sqlite_thread): links made at the same
moment share one fsync with each other and with redemptions, and none pays the ORM-over-aiosqlite toll (~2 ms of
CPU for this SELECT and INSERT; ~50 µs on plain sqlite3). The job runs inside the writer's BEGIN IMMEDIATE, so
the sweeper (which deletes abandoned files in a write transaction of its own) cannot remove the file between the
check and the insert: SQLite serialises the two whole, as FileRepository.get_to_link says. A file that may not be
linked is an answer of the job, not an exception, so it never rolls back the other jobs of its batch.

Elsewhere `SessionMinter` runs links.service.store_link through the ORM.
"""

import sqlite3
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lapse import metrics
from lapse.db.models import ApiKey, Link
from lapse.db.rows import loaded, to_sqlite
from lapse.db.session import transaction
from lapse.db.sqlite_thread import SqliteThread
from lapse.files import service as files_service
from lapse.links import service as links_service

_LINK_COLUMNS = tuple(Link.__table__.columns.keys())
# As FileRepository.get_to_link: one file by id, scoped to its owner unless the caller is an admin (:owner NULL).
FILE_TO_LINK = "SELECT id, owner_id FROM files WHERE id = :id AND (:owner IS NULL OR owner_id = :owner)"
# Column names come from the model; every value is a bound parameter.
INSERT_LINK = (
    "INSERT INTO links (" + ", ".join(_LINK_COLUMNS) + ") VALUES (" + ", ".join(f":{c}" for c in _LINK_COLUMNS) + ")"  # noqa: S608
)


class Minter(Protocol):
    async def mint(self, *, owner: ApiKey, file_id: str, new: links_service.NewLink, now: datetime) -> Link:
        """The stored link (detached: read it, do not change it); 404 when `owner` may not link that file."""


class SqliteMinter:
    def __init__(self, writer: SqliteThread) -> None:
        self.writer = writer

    async def mint(self, *, owner: ApiKey, file_id: str, new: links_service.NewLink, now: datetime) -> Link:
        scope = files_service.owner_scope(owner)

        def work(connection: sqlite3.Connection) -> dict[str, Any] | None:
            file = connection.execute(FILE_TO_LINK, {"id": file_id, "owner": scope}).fetchone()
            if file is None:
                return None
            row = new.row(file_id=file[0], owner_id=file[1], now=now)
            connection.execute(INSERT_LINK, {c: to_sqlite(row[c]) for c in _LINK_COLUMNS})
            return row

        row = await self.writer.run_sql(work)  # answered once the batch holding it has committed
        if row is None:
            raise files_service.no_such_file()
        metrics.LINKS.inc()  # SessionMinter's is counted in links_service.store_link, as every other link is
        return loaded(Link, row)


class SessionMinter:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def mint(self, *, owner: ApiKey, file_id: str, new: links_service.NewLink, now: datetime) -> Link:
        async with transaction(self.sessions) as session:
            return await links_service.store_link(session, owner=owner, file_id=file_id, new=new, now=now)
