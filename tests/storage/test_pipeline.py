"""storage.pipeline.pump: every byte in order, batches handed to one worker thread, errors raised as themselves."""

import threading
from collections.abc import AsyncIterator

import anyio
import pytest

from lapse.errors import TooLarge
from lapse.storage.pipeline import pump

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class Sink:
    """Collects what the worker thread was given, and on which thread."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.threads: set[int] = set()

    def __call__(self, batch: list[bytes]) -> None:
        self.threads.add(threading.get_ident())
        self.batches.append(batch)

    @property
    def data(self) -> bytes:
        return b"".join(b"".join(batch) for batch in self.batches)


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([bytes([i % 251]) for i in range(30_000)], id="many one-byte chunks"),
        pytest.param([b"a" * (5 * MiB + 7)], id="one huge chunk"),
        pytest.param([b"", b"x" * 100, b"", b"y" * (3 * MiB), b"z"], id="mixed, with empty chunks"),
        pytest.param([], id="empty body"),
    ],
)
async def test_every_byte_reaches_the_sink_in_order(chunks: list[bytes]) -> None:
    sink = Sink()
    size = await pump(body(*chunks), sink, max_size=10 * MiB, batch_size=64 * 1024)
    assert sink.data == b"".join(chunks)
    assert size == len(sink.data)
    assert all(batch for batch in sink.batches)  # never a pointless empty write
    assert threading.get_ident() not in sink.threads  # never on the event loop


async def test_small_chunks_are_gathered_into_batches() -> None:
    sink = Sink()
    await pump(body(*[b"x" * 1000] * 1000), sink, max_size=MiB, batch_size=100_000)
    assert len(sink.batches) == 10  # one thread hop per batch, not per chunk


async def test_the_next_batch_is_received_while_the_thread_writes_this_one() -> None:
    """The point of the pipeline: receiving does not wait for each write. And it is bounded: while the thread
    is stuck on one batch, the next is gathered and the body is read no further."""
    writing = threading.Event()
    release = threading.Event()
    pulled: list[int] = []

    def slow(batch: list[bytes]) -> None:
        writing.set()
        release.wait(10)

    async def counted() -> AsyncIterator[bytes]:
        for i in range(10):
            pulled.append(i)
            yield b"x" * 1000

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: pump(counted(), slow, max_size=MiB, batch_size=1000))
        assert await anyio.to_thread.run_sync(writing.wait, 10), "the thread never got batch 0"
        # Every other task is now waiting: whatever the pump was going to read while the thread is stuck, it has read.
        await anyio.wait_all_tasks_blocked()
        assert pulled == [0, 1]  # batch 0 in the thread, batch 1 gathered and waiting; nothing more read
        release.set()
    assert len(pulled) == 10


async def test_over_the_cap_raises_too_large_itself() -> None:
    sink = Sink()
    with pytest.raises(TooLarge):
        await pump(body(b"x" * 600, b"y" * 600), sink, max_size=1000, batch_size=500)
    assert len(sink.data) <= 1000  # nothing past the cap reached the sink


async def test_a_failing_write_raises_its_own_error_and_stops_the_body() -> None:
    pulled = 0

    def full(batch: list[bytes]) -> None:
        raise OSError(28, "No space left on device")

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    with pytest.raises(OSError, match="No space") as caught:
        await pump(endless(), full, max_size=10**12, batch_size=1000)
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert pulled < 10


async def test_a_failing_body_raises_its_own_error_after_the_write_in_flight_is_done() -> None:
    class Gone(Exception):
        pass

    writing = threading.Event()
    release = threading.Event()
    finished = threading.Event()
    failed = anyio.Event()
    raised: list[BaseException] = []
    finished_when_raised: list[bool] = []

    def slow(batch: list[bytes]) -> None:
        anyio.from_thread.run_sync(lambda: None)  # still attached to the loop: the write is really in flight
        writing.set()
        release.wait(10)
        finished.set()

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        assert await anyio.to_thread.run_sync(writing.wait, 10), "the thread never got batch 0"
        failed.set()
        raise Gone

    async def run_pump() -> None:
        try:
            await pump(broken(), slow, max_size=MiB, batch_size=1000)
        except Gone as error:
            raised.append(error)
            finished_when_raised.append(finished.is_set())

    async with anyio.create_task_group() as group:
        group.start_soon(run_pump)
        await failed.wait()
        await anyio.wait_all_tasks_blocked()  # the pump has seen the failure and is waiting for something
        assert raised == [], "pump returned while the thread was still writing"
        release.set()
    assert len(raised) == 1
    assert finished_when_raised == [True]  # pump raised only once the thread let go of the batch (and the file)
