"""Storing a new link: check the file may be linked by its caller, insert the row, in one transaction.

On SQLite this is one job on the redeemer's group-committing writer (db.sqlite_thread): links made at the same
moment share one fsync with each other and with redemptions, and none pays the ORM-over-aiosqlite toll (~2 ms of
CPU for this SELECT and INSERT; ~50 µs on plain sqlite3). The job runs inside the writer's BEGIN IMMEDIATE, so
the sweeper (which deletes abandoned files in a write transaction of its own) cannot remove the file between the
check and the insert: SQLite serialises the two whole, as FileRepository.get_to_link says. A file that may not be
linked is an answer of the job, not an exception, so it never rolls back the other jobs of its batch.

On PostgreSQL (`AsyncpgMinter`) the same two statements run in one transaction on the redeemer's asyncpg pool:
the file's row is held FOR KEY SHARE until the link is in, so the sweeper skips it or deletes it first.
Links made elsewhere (the web page) go through links.service.store_link and the ORM.
"""

import sqlite3
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from lapse import metrics
from lapse.db.models import ApiKey, Link
from lapse.db.rows import loaded, to_sqlite
from lapse.db.sqlite_thread import SqliteThread
from lapse.db.statements import for_asyncpg, for_sqlite
from lapse.files import repository as files_repository
from lapse.files import service as files_service
from lapse.links import repository as links_repository
from lapse.links import service as links_service
from lapse.links.redeemer import AsyncpgRedeemer

FILE_TO_LINK = for_sqlite(files_repository.FILE_TO_LINK)
INSERT_LINK = for_sqlite(links_repository.INSERT)
FILE_TO_LINK_PG = for_asyncpg(files_repository.FILE_TO_LINK)
INSERT_LINK_PG = for_asyncpg(links_repository.INSERT)
_FILE_ID = files_repository.FILE_COLUMNS.index("id")
_FILE_OWNER = files_repository.FILE_COLUMNS.index("owner_id")


class Minter(Protocol):
    async def mint(self, *, owner: ApiKey, file_id: str, new: links_service.NewLink, now: datetime) -> Link:
        """The stored link (detached: read it, do not change it); 404 when `owner` may not link that file."""


class SqliteMinter:
    def __init__(self, writer: SqliteThread) -> None:
        self.writer = writer

    async def mint(self, *, owner: ApiKey, file_id: str, new: links_service.NewLink, now: datetime) -> Link:
        scope = files_service.owner_scope(owner)

        def work(connection: sqlite3.Connection) -> dict[str, Any] | None:
            file = connection.execute(FILE_TO_LINK, {"file_id": file_id, "owner_id": scope}).fetchone()
            if file is None:
                return None
            row = new.row(file_id=file[_FILE_ID], owner_id=file[_FILE_OWNER], now=now)
            connection.execute(INSERT_LINK, {c: to_sqlite(v) for c, v in row.items()})
            return row

        row = await self.writer.run_sql(work)  # answered once the batch holding it has committed
        if row is None:
            raise files_service.no_such_file()
        metrics.LINKS.inc()  # links made through the ORM are counted in links_service.store_link
        return loaded(Link, row)


class AsyncpgMinter:
    def __init__(self, redeemer: AsyncpgRedeemer) -> None:
        self.redeemer = redeemer

    async def mint(self, *, owner: ApiKey, file_id: str, new: links_service.NewLink, now: datetime) -> Link:
        values = {"file_id": file_id, "owner_id": files_service.owner_scope(owner)}

        async def work(pool: asyncpg.Pool) -> dict[str, Any] | None:
            async with pool.acquire() as connection, connection.transaction():
                file = await connection.fetchrow(FILE_TO_LINK_PG.sql, *FILE_TO_LINK_PG.args(values))
                if file is None:
                    return None
                row = new.row(file_id=file["id"], owner_id=file["owner_id"], now=now)
                await connection.execute(INSERT_LINK_PG.sql, *INSERT_LINK_PG.args(row))
                return row

        row = await self.redeemer.run(work)  # committed when the transaction block ends
        if row is None:
            raise files_service.no_such_file()
        metrics.LINKS.inc()
        return loaded(Link, row)
