"""A sqlite3 connection owned by one thread that answers work in batches: group commit for the hot path.

Why by hand: aiosqlite hops threads once per call and commits once per transaction. On the download path that
meant one fsync per redemption, taken one after another on one thread, so 32 concurrent downloads waited in line
for 32 fsyncs. Here every job queued while the thread was busy runs in the next batch: a writing thread wraps
the whole batch in one `BEGIN IMMEDIATE … COMMIT` (one fsync for all of them, the classic group commit), and the
answers go back to the event loop in one wake-up. No job gets its answer before the commit that made it durable.

Each job is still its own statement with its own rule (a conditional UPDATE stays exactly-k: SQLite runs the
batch's statements one after another inside the writer lock). Any failure fails the whole batch: it is rolled
back and every job in it gets the error, so nothing is reported as done that was not committed.
"""

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from lapse.db.session import SQLITE_BUSY_TIMEOUT_MS
from lapse.errors import Unavailable

T = TypeVar("T")

MAX_BATCH = 256  # bounds one transaction's length (and how long a writer lock is held)


class _Job:
    __slots__ = ("future", "loop", "outcome", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.work = work
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.outcome: tuple[bool, Any] = (False, None)


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


class SqliteThread:
    """One thread, one connection, opened on first use. `writes=True`: each batch is one transaction."""

    def __init__(self, path: str, *, name: str, writes: bool) -> None:
        self.path = path
        self.writes = writes
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._lock = threading.Lock()

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the thread's connection; sqlite3 errors become Unavailable (503, fail closed)."""
        job = _Job(work, asyncio.get_running_loop())
        with self._lock:
            if not self._thread.is_alive():
                self._thread.start()
        self._jobs.put(job)
        result: T = await job.future
        return result

    def close(self) -> None:
        """Stop the thread after the jobs already queued; blocks until it has closed its connection."""
        with self._lock:
            if self._thread.is_alive():
                self._jobs.put(None)
                self._thread.join()

    def _serve(self) -> None:
        connection: sqlite3.Connection | None = None
        stopping = False
        while not stopping:
            batch = [self._jobs.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            jobs = [job for job in batch if job is not None]
            if not jobs:
                continue
            try:
                connection = connection or connect(self.path)
                self._run_batch(connection, jobs)
            except Exception as exc:  # the whole batch failed and was rolled back: every job hears so
                for job in jobs:
                    job.outcome = (False, _unavailable(exc) if isinstance(exc, sqlite3.Error) else exc)
                _discard(connection)
                connection = None  # a fresh connection for the next batch
            self._answer(jobs)
        _discard(connection)

    def _run_batch(self, connection: sqlite3.Connection, jobs: list[_Job]) -> None:
        if self.writes:
            connection.execute("BEGIN IMMEDIATE")
        try:
            for job in jobs:
                job.outcome = (True, job.work(connection))
        except BaseException:
            if self.writes and connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        if self.writes:
            connection.execute("COMMIT")  # before any job hears it is done

    @staticmethod
    def _answer(jobs: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in jobs:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, answered in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, answered)  # one wake-up of the loop for the whole batch


def _unavailable(cause: sqlite3.Error) -> Unavailable:
    """Locked past busy_timeout, disk I/O, gone: fail closed (503), nothing was counted."""
    error = Unavailable("The database is not available right now.")
    error.__cause__ = cause
    return error


def _discard(connection: sqlite3.Connection | None) -> None:
    if connection is not None:
        with contextlib.suppress(sqlite3.Error):
            connection.close()


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():  # the caller was cancelled; a committed write stays committed
            continue
        ok, value = job.outcome
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
