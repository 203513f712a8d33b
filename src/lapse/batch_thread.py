"""One worker thread that runs whatever was queued while it was busy as one batch, then answers the whole batch
with one wake-up of the event loop.

Why by hand: `run_in_executor` and anyio's `to_thread` wake one pooled thread per call and the loop once per
answer. On the download path that was most of a 1 KiB download's CPU outside the event loop: six pool threads
taking turns at futex wake-ups and context switches for a stat and a small read each. Under load, a single
thread that takes the queue in batches does the same work with a fraction of the switches. `db.sqlite_thread`
builds group commit on it.
"""

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

MAX_BATCH = 256  # bounds how long one batch (for SQLite: one transaction, one writer lock) runs


class Job:
    __slots__ = ("future", "loop", "outcome", "work")

    def __init__(self, work: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.work = work
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.outcome: tuple[bool, Any] = (False, None)

    def run(self) -> None:
        self.outcome = (True, self.work())


class BatchThread:
    """Started on first use; `close` stops it after the jobs already queued."""

    def __init__(self, *, name: str) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._lock = threading.Lock()

    async def run(self, work: Callable[[], T]) -> T:
        job = Job(work, asyncio.get_running_loop())
        with self._lock:
            if not self._thread.is_alive():
                self._thread.start()
        self._jobs.put(job)
        result: T = await job.future
        return result

    def close(self) -> None:
        """Blocks until the thread has answered what was queued and let go of what it holds."""
        with self._lock:
            if self._thread.is_alive():
                self._jobs.put(None)
                self._thread.join()

    def run_batch(self, jobs: list[Job]) -> None:
        """Each job on its own: one failing does not fail the others. Subclasses change this."""
        for job in jobs:
            try:
                job.run()
            except Exception as exc:
                job.outcome = (False, exc)

    def stopped(self) -> None:
        """Called on the thread as it stops: release what it holds."""

    def _serve(self) -> None:
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
            if jobs:
                self.run_batch(jobs)
                _answer(jobs)
        self.stopped()


def _answer(jobs: list[Job]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[Job]] = {}
    for job in jobs:
        by_loop.setdefault(job.loop, []).append(job)
    for loop, answered in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, answered)  # one wake-up of the loop for the whole batch


def _settle(jobs: list[Job]) -> None:
    for job in jobs:
        if job.future.done():  # the caller was cancelled; a committed write stays committed
            continue
        ok, value = job.outcome
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
