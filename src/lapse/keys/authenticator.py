"""Who is calling: the API key behind `Authorization: Bearer …`, checked once per API request.

On SQLite the lookup is one statement on the redeemer's lookup thread and the rare `last_used_at` touch one on its
group-committing writer (db.sqlite_thread), for the reason links.redeemer gives: the ORM session over aiosqlite
cost ~1 ms of CPU for this SELECT, which plain sqlite3 runs in tens of µs. The rules stay in keys.service
(`presented_key_hash`, `checked_key`, `needs_touch`); elsewhere `SessionAuthenticator` runs them through the ORM.
"""

import sqlite3
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lapse.db.models import ApiKey
from lapse.db.rows import loaded, sqlite_datetime, sqlite_row
from lapse.db.session import transaction
from lapse.db.sqlite_thread import SqliteThread
from lapse.db.statements import for_sqlite
from lapse.keys import repository
from lapse.keys import service as keys_service

ACTIVE_BY_HASH = for_sqlite(repository.ACTIVE_BY_HASH)
TOUCH = for_sqlite(repository.TOUCH)


class Authenticator(Protocol):
    async def authenticate(self, raw_key: str | None, now: datetime) -> ApiKey:
        """The active key presented, its use recorded (to the minute); 401 when missing, unknown or revoked.
        The key returned is detached: read it, do not change it."""


class SqliteAuthenticator:
    def __init__(self, reader: SqliteThread, writer: SqliteThread, secret: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.secret = secret

    async def authenticate(self, raw_key: str | None, now: datetime) -> ApiKey:
        key_hash = keys_service.presented_key_hash(self.secret, raw_key)

        def find(connection: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = connection.execute(ACTIVE_BY_HASH, {"key_hash": key_hash}).fetchone()
            return row

        row = await self.reader.run_sql(find)
        found = None
        if row is not None:
            values = sqlite_row(repository.KEY_COLUMNS, row)
            found = loaded(ApiKey, values | {"is_admin": bool(values["is_admin"])})
        key = keys_service.checked_key(found, key_hash)
        if keys_service.needs_touch(key, now):

            def touch(connection: sqlite3.Connection) -> None:
                connection.execute(TOUCH, {"now": sqlite_datetime(now), "key_id": key.id})

            await self.writer.run_sql(touch)
            key.last_used_at = now
        return key


class SessionAuthenticator:
    """keys.service.authenticate in a short transaction of its own (PostgreSQL, in-memory SQLite)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], secret: bytes) -> None:
        self.sessions = sessions
        self.secret = secret

    async def authenticate(self, raw_key: str | None, now: datetime) -> ApiKey:
        async with transaction(self.sessions) as session:
            return await keys_service.authenticate(session, secret=self.secret, raw_key=raw_key, now=now)
