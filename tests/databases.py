"""Test databases: migrated once per test process (per xdist worker), then copied.

Alembic costs a fraction of a second per database. SQLite tests get a copy of a migrated file (a file copy costs
well under a millisecond). PostgreSQL tests share their worker's database, a `CREATE DATABASE … TEMPLATE` copy of
the migrated template, emptied before each test: a copy per test would write and flush the whole
catalogue each time, several times slower than the test itself on a busy machine. Servers started by the tests
get a copy of their own. Each worker keeps templates of its own, with random names, because PostgreSQL refuses to
copy a template somebody else is connected to, and other test runs may share the server.
"""

import asyncio
import os
import secrets
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.pool import NullPool

from lapse.db import models  # noqa: F401 - registers the tables on Base.metadata
from lapse.db.base import Base
from lapse.db.migrate import upgrade
from lapse.db.session import create_engine

PG_ADMIN_URL = os.environ.get("LAPSE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
T = TypeVar("T")


def isolated(work: Callable[[], T]) -> T:
    """Run set-up work on a thread of its own, outside any test's event loop: Alembic runs its own loop, and
    fixtures that set up databases are sync so that parametrised fixtures can ask for them."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def run_isolated(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run async set-up work on a thread and event loop of its own."""
    return isolated(lambda: asyncio.run(work()))


async def execute(url: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE need that), on a connection of their own."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def postgres_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def unique_name(purpose: str) -> str:
    """A database name no other worker or concurrent test run picks: the worker's id and random hex."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"lapse_{purpose}_{worker}_{secrets.token_hex(4)}"


# Commits return before their WAL reaches the disk: nothing in the tests outlives PostgreSQL itself, and waiting
# for a flush on every commit, on a disk other jobs share, was most of a PostgreSQL test's time.
FAST_COMMITS = "SET synchronous_commit = off"


def create_postgres(name: str) -> str:
    run_isolated(lambda: execute(PG_ADMIN_URL, f'CREATE DATABASE "{name}"', f'ALTER DATABASE "{name}" {FAST_COMMITS}'))
    return postgres_url(name)


def drop_postgres(name: str) -> None:
    run_isolated(lambda: execute(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Templates:
    """One migrated SQLite file and one migrated PostgreSQL database, made on first use; `close()` removes them.

    Used PostgreSQL copies are dropped on a thread of their own while tests run.
    """

    def __init__(self) -> None:
        self._sqlite: Path | None = None
        self._postgres: str | None = None
        self._background = ThreadPoolExecutor(1, thread_name_prefix="test-databases")
        self._drops: list[Future[None]] = []
        self._lock = threading.Lock()  # fixtures may ask from several threads (anyio.to_thread)

    def sqlite_file(self) -> Path:
        with self._lock:
            return self._sqlite_file()

    def _sqlite_file(self) -> Path:
        if self._sqlite is None:
            path = Path(tempfile.mkdtemp(prefix="lapse-template-")) / "lapse.db"
            isolated(lambda: upgrade(f"sqlite:///{path}"))
            # Everything into the main file, so that copying that one file copies the whole database.
            with closing(sqlite3.connect(path)) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._sqlite = path
        return self._sqlite

    def postgres_name(self) -> str:
        if self._postgres is None:
            name = unique_name("template")
            url = create_postgres(name)
            try:
                isolated(lambda: upgrade(url))
            except BaseException:
                drop_postgres(name)
                raise
            self._postgres = name
        return self._postgres

    def _copy(self) -> str:
        name = unique_name("test")
        template = self.postgres_name()
        asyncio.run(
            execute(
                PG_ADMIN_URL,
                f'CREATE DATABASE "{name}" TEMPLATE "{template}"',
                f'ALTER DATABASE "{name}" {FAST_COMMITS}',  # settings are not copied from the template
            )
        )
        return name

    def _drop(self, name: str) -> None:
        asyncio.run(execute(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def take_postgres(self) -> str:
        """A migrated database of the caller's own (its name); give it back with `release_postgres`."""
        with self._lock:
            self.postgres_name()
        return self._background.submit(self._copy).result()

    def release_postgres(self, name: str) -> None:
        """Dropped in the background: nobody waits for it before the end of the session."""
        with self._lock:
            self._drops.append(self._background.submit(self._drop, name))

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        for drop in self._drops:
            drop.result()
        self._drops.clear()
        if self._postgres is not None:
            drop_postgres(self._postgres)
            self._postgres = None
        if self._sqlite is not None:
            shutil.rmtree(self._sqlite.parent, ignore_errors=True)
            self._sqlite = None


TEMPLATES = Templates()


async def empty_tables(url: str) -> None:
    """Every table the models know (new ones included) emptied, children first. DELETE, not TRUNCATE: a test leaves
    a handful of rows, and TRUNCATE makes new files for every table, which costs more than deleting them."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.execute(table.delete())
    finally:
        await engine.dispose()


def migrated_sqlite(path: Path) -> str:
    """A migrated SQLite database at `path` (a copy of the template): answers its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATES.sqlite_file(), path)
    return f"sqlite:///{path}"


@contextmanager
def migrated_postgres() -> Iterator[str]:
    """A migrated PostgreSQL database of its own (a copy of the template), dropped afterwards."""
    name = TEMPLATES.take_postgres()
    try:
        yield postgres_url(name)
    finally:
        TEMPLATES.release_postgres(name)


@contextmanager
def empty_postgres(purpose: str = "server") -> Iterator[str]:
    """An empty PostgreSQL database (no schema: whoever uses it migrates it), dropped afterwards."""
    name = unique_name(purpose)
    url = create_postgres(name)
    try:
        yield url
    finally:
        drop_postgres(name)
