"""A sqlite3 connection owned by one thread that answers work in batches: group commit for the hot path.

Why by hand: aiosqlite hops threads once per call and commits once per transaction. On the download path that
meant one fsync per redemption, taken one after another on one thread, so 32 concurrent downloads waited in line
for 32 fsyncs. Here every job queued while the thread was busy runs in the next batch (`batch_thread`): a writing
thread wraps the whole batch in one `BEGIN IMMEDIATE … COMMIT` (one fsync for all of them, the classic group
commit), and the answers go back to the event loop in one wake-up. No job gets its answer before the commit that
made it durable.

Each job is still its own statement with its own rule (a conditional UPDATE stays exactly-k: SQLite runs the
batch's statements one after another inside the writer lock). Any failure fails the whole batch: it is rolled
back and every job in it gets the error, so nothing is reported as done that was not committed.
"""

import contextlib
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from lapse.batch_thread import BatchThread, Job
from lapse.db.session import SQLITE_BUSY_TIMEOUT_MS
from lapse.errors import Unavailable

T = TypeVar("T")


def connect(path: str) -> sqlite3.Connection:
    """Configured as db.session configures the ORM's connections: WAL, and FULL so that a counted download
    survives power loss. Autocommit mode: transactions are begun explicitly."""
    connection = sqlite3.connect(
        path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA synchronous=FULL")
    return connection


class SqliteThread(BatchThread):
    """One thread, one connection, opened on first use. `writes=True`: each batch is one transaction."""

    def __init__(self, path: str, *, name: str, writes: bool) -> None:
        super().__init__(name=name)
        self.path = path
        self.writes = writes
        self._connection: sqlite3.Connection | None = None  # only ever touched on the thread

    async def run_sql(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the thread's connection; sqlite3 errors become Unavailable (503, fail closed)."""
        return await self.run(lambda: work(self._connected()))

    def _connected(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = connect(self.path)
            if self.writes:  # statistics the planner lacks or that went stale, as SQLite advises on opening
                self._connection.execute("PRAGMA optimize=0x10002")
        return self._connection

    def run_batch(self, jobs: list[Job]) -> None:
        try:
            self._in_transaction(jobs)
        except Exception as exc:  # the whole batch failed and was rolled back: every job hears so
            for job in jobs:
                job.outcome = (False, _unavailable(exc) if isinstance(exc, sqlite3.Error) else exc)
            self.stopped()  # a fresh connection for the next batch

    def _in_transaction(self, jobs: list[Job]) -> None:
        connection = self._connected()
        if self.writes:
            connection.execute("BEGIN IMMEDIATE")
        try:
            for job in jobs:
                job.run()
        except BaseException:
            if self.writes and connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        if self.writes:
            connection.execute("COMMIT")  # before any job hears it is done

    def stopped(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(sqlite3.Error):
                connection.close()


def _unavailable(cause: sqlite3.Error) -> Unavailable:
    """Locked past busy_timeout, disk I/O, gone: fail closed (503), nothing was counted."""
    error = Unavailable("The database is not available right now.")
    error.__cause__ = cause
    return error
