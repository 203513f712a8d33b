"""db.sqlite_thread: jobs queued together share one transaction; nobody hears "done" before its commit; a failure
fails the whole batch and leaves nothing behind."""

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from lapse.db.sqlite_thread import SqliteThread
from lapse.errors import Unavailable

pytestmark = pytest.mark.anyio


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = str(tmp_path / "t.db")
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE counts (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n <= 50))")
        connection.execute("INSERT INTO counts VALUES (1, 0)")
    return path


def read_count(path: str) -> int:
    with sqlite3.connect(path) as connection:
        count: int = connection.execute("SELECT n FROM counts WHERE id = 1").fetchone()[0]
        return count


async def test_queued_writes_share_one_transaction_and_are_committed_when_answered(database: str) -> None:
    writer = SqliteThread(database, name="test-writer", writes=True)
    started, gate = threading.Event(), threading.Event()
    statements: list[str] = []  # every statement the writer's connection runs, as SQLite traces them
    in_transaction: list[bool] = []

    def blocker(connection: sqlite3.Connection) -> None:
        connection.set_trace_callback(statements.append)
        started.set()
        gate.wait(5)  # holds the thread so that the next jobs queue up behind it

    def bump(connection: sqlite3.Connection) -> int:
        in_transaction.append(connection.in_transaction)
        row = connection.execute("UPDATE counts SET n = n + 1 WHERE id = 1 RETURNING n").fetchone()
        return int(row[0])

    try:
        first = asyncio.ensure_future(writer.run_sql(blocker))
        assert await anyio.to_thread.run_sync(started.wait, 5), "the writer never ran the first job"
        bumps = [asyncio.ensure_future(writer.run_sql(bump)) for _ in range(20)]
        await anyio.wait_all_tasks_blocked()  # every bump is queued, waiting for its answer
        gate.set()
        await first
        results = await asyncio.gather(*bumps)
        assert sorted(results) == list(range(1, 21))
        assert read_count(database) == 20  # another connection sees every answered write
        assert in_transaction == [True] * 20  # each ran inside a transaction begun for it or its batch
        # The blocker's batch ends with its COMMIT; then the twenty queued jobs: one BEGIN, twenty UPDATEs, one COMMIT.
        updates = [statement.split()[0] for statement in statements]
        assert updates == ["COMMIT", "BEGIN", *["UPDATE"] * 20, "COMMIT"], statements
    finally:
        writer.close()


async def test_a_failing_job_rolls_back_its_whole_batch(database: str) -> None:
    writer = SqliteThread(database, name="test-writer", writes=True)
    started, gate = threading.Event(), threading.Event()

    def blocker(connection: sqlite3.Connection) -> None:
        started.set()
        gate.wait(5)

    def bump(by: int) -> Callable[[sqlite3.Connection], None]:
        def work(connection: sqlite3.Connection) -> None:
            connection.execute("UPDATE counts SET n = n + ? WHERE id = 1", (by,))

        return work

    try:
        first = asyncio.ensure_future(writer.run_sql(blocker))
        assert await anyio.to_thread.run_sync(started.wait, 5), "the writer never ran the first job"
        good = asyncio.ensure_future(writer.run_sql(bump(1)))
        bad = asyncio.ensure_future(writer.run_sql(bump(100)))  # breaks the CHECK
        await anyio.wait_all_tasks_blocked()  # both are queued, in one batch behind the blocker
        gate.set()
        await first
        for job in (good, bad):
            with pytest.raises(Unavailable):
                await job
        assert read_count(database) == 0
        # The thread carries on with a fresh transaction.
        await writer.run_sql(bump(2))
        assert read_count(database) == 2
    finally:
        writer.close()


async def test_a_bug_in_a_job_is_raised_to_its_callers(database: str) -> None:
    reader = SqliteThread(database, name="test-reader", writes=False)

    def broken(connection: sqlite3.Connection) -> None:
        raise KeyError("bug")

    try:
        with pytest.raises(KeyError):
            await reader.run_sql(broken)
        assert await reader.run_sql(lambda c: c.execute("SELECT n FROM counts").fetchone()[0]) == 0
    finally:
        reader.close()


async def test_a_missing_database_is_unavailable(tmp_path: Path) -> None:
    reader = SqliteThread(str(tmp_path / "no" / "such" / "dir.db"), name="test-reader", writes=False)
    try:
        with pytest.raises(Unavailable):
            await reader.run_sql(lambda c: c.execute("SELECT 1").fetchone())
    finally:
        reader.close()
