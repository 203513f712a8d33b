"""The download hot path's two statements — find a link by its token hash, redeem one download — run lean.

Profiling `GET /d/{token}` showed the ORM session over aiosqlite, not the SQL, as the cost: a dozen thread hops
and ~2 ms of CPU per request for a SELECT and an UPDATE that take ~25 µs each on a plain sqlite3 connection. So
on SQLite these statements run on raw `sqlite3` connections owned by dedicated threads: one hop each, and
redemptions committed in groups (db.sqlite_thread). The statements are links.repository's, written once there
and compiled here for the driver (db.statements); the rule lives in one conditional UPDATE (`REDEEM`), committed
before the caller sends a byte.

On PostgreSQL they run on a small asyncpg pool of their own (`AsyncpgRedeemer`): the UPDATE is one statement in
autocommit, i.e. its own transaction, committed when it returns. Everything else in the API keeps the ORM.
"""

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.orm import configure_mappers

from lapse.db.models import File, Link
from lapse.db.rows import loaded, sqlite_datetime, sqlite_row
from lapse.db.sqlite_thread import SqliteThread
from lapse.db.statements import for_asyncpg, for_sqlite
from lapse.errors import Unavailable
from lapse.files.repository import FILE_COLUMNS
from lapse.links import repository

T = TypeVar("T")

# The repository's statements (written once there), compiled for the raw drivers.
FIND = for_sqlite(repository.FIND_BY_TOKEN)
GET_LINK = for_sqlite(repository.GET)
REDEEM = for_sqlite(repository.REDEEM)
FIND_PG = for_asyncpg(repository.FIND_BY_TOKEN)
GET_LINK_PG = for_asyncpg(repository.GET)
REDEEM_PG = for_asyncpg(repository.REDEEM)
_LINK_COLUMNS = repository.LINK_COLUMNS
_FILE_COLUMNS = FILE_COLUMNS


class Redeemer(Protocol):
    async def find(self, token_hash: str) -> tuple[Link, File | None] | None:
        """The link with this token hash and its file (None once deleted); None if there is no such link."""

    async def redeem(self, link_id: str, now: datetime) -> int | None:
        """Count one download and commit; the new count, or None if the link may not give one now."""

    async def get_link(self, link_id: str) -> Link | None:
        """The link as it is now (to say why a redemption was refused)."""

    async def aclose(self) -> None: ...


class SqliteRedeemer:
    """Reads on one thread of their own, redemptions on another that commits them in groups (db.sqlite_thread):
    under load, many redemptions share one fsync, and a lookup never waits behind a commit (WAL readers do not
    block on the writer)."""

    def __init__(self, path: str) -> None:
        configure_mappers()  # for `loaded`
        self.path = path
        self.reader = SqliteThread(path, name="lapse-lookups", writes=False)
        self.writer = SqliteThread(path, name="lapse-redemptions", writes=True)

    async def find(self, token_hash: str) -> tuple[Link, File | None] | None:
        def work(connection: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = connection.execute(FIND, {"token_hash": token_hash}).fetchone()
            return row

        row = await self.reader.run_sql(work)
        if row is None:
            return None
        split = len(_LINK_COLUMNS)
        link = loaded(Link, sqlite_row(_LINK_COLUMNS, row[:split]))
        file = None if row[split] is None else loaded(File, sqlite_row(_FILE_COLUMNS, row[split:]))
        return link, file

    async def redeem(self, link_id: str, now: datetime) -> int | None:
        def work(connection: sqlite3.Connection) -> int | None:
            row = connection.execute(REDEEM, {"link_id": link_id, "now": sqlite_datetime(now)}).fetchone()
            return None if row is None else int(row[0])

        # Answered only once the batch holding it is committed: counted before the caller sends a byte.
        return await self.writer.run_sql(work)

    async def get_link(self, link_id: str) -> Link | None:
        def work(connection: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = connection.execute(GET_LINK, {"link_id": link_id}).fetchone()
            return row

        row = await self.reader.run_sql(work)
        return None if row is None else loaded(Link, sqlite_row(_LINK_COLUMNS, row))

    async def aclose(self) -> None:
        await asyncio.to_thread(self.reader.close)
        await asyncio.to_thread(self.writer.close)


# Connection refused, reset, timed out, or the server refusing: fail closed (503), never count.
_PG_UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
PG_CONNECT_TIMEOUT = 10.0
PG_POOL_SIZE = 10


class AsyncpgRedeemer:
    """A small asyncpg pool for the two statements; created on first use, in the loop that serves requests."""

    def __init__(self, url: URL) -> None:
        configure_mappers()  # for `loaded`
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool: asyncpg.Pool | None = None
        self._creating: asyncio.Lock | None = None

    async def _acquire_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._creating = self._creating or asyncio.Lock()
            async with self._creating:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=1, max_size=PG_POOL_SIZE, timeout=PG_CONNECT_TIMEOUT
                    )
        return self._pool

    async def run(self, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
        """`work` on the pool; the database unreachable is Unavailable (503, nothing done)."""
        try:
            return await work(await self._acquire_pool())
        except _PG_UNAVAILABLE as exc:
            raise Unavailable("The database is not available right now.") from exc

    async def find(self, token_hash: str) -> tuple[Link, File | None] | None:
        row = await self.run(lambda pool: pool.fetchrow(FIND_PG.sql, *FIND_PG.args({"token_hash": token_hash})))
        if row is None:
            return None
        values = tuple(row.values())
        split = len(_LINK_COLUMNS)
        link = loaded(Link, dict(zip(_LINK_COLUMNS, values[:split], strict=True)))
        file = None if values[split] is None else loaded(File, dict(zip(_FILE_COLUMNS, values[split:], strict=True)))
        return link, file

    async def redeem(self, link_id: str, now: datetime) -> int | None:
        # One statement outside any explicit transaction: autocommit, committed when it returns.
        downloads = await self.run(
            lambda pool: pool.fetchval(REDEEM_PG.sql, *REDEEM_PG.args({"link_id": link_id, "now": now}))
        )
        return None if downloads is None else int(downloads)

    async def get_link(self, link_id: str) -> Link | None:
        row = await self.run(lambda pool: pool.fetchrow(GET_LINK_PG.sql, *GET_LINK_PG.args({"link_id": link_id})))
        return None if row is None else loaded(Link, dict(zip(_LINK_COLUMNS, row.values(), strict=True)))

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
