"""Hand a request body to a worker thread in batches, gathering the next batch while the thread works on this one.

Why: the event loop receives the body in 64 to 256 KiB pieces, and hashing plus writing them costs nearly as much CPU
as receiving them. Awaiting each batch's write stalls the receiver (uvicorn stops reading the socket once 64 KiB are
waiting), so both halves ran one after the other. hashlib and file writes release the GIL, so a worker thread doing
batch N while the loop receives batch N+1 runs them side by side, with one thread hop per batch.
"""

from collections.abc import AsyncIterable, Callable, Iterator

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from lapse.errors import TooLarge

# Big enough that the thread hop (~0.2 ms here) is noise next to the work, small enough to keep memory flat.
BATCH_SIZE = 1024 * 1024

Consume = Callable[[list[bytes]], None]


async def pump(chunks: AsyncIterable[bytes], consume: Consume, *, max_size: int, batch_size: int = BATCH_SIZE) -> int:
    """Feed every chunk, in order, to `consume` (run in a worker thread) in batches of about `batch_size` bytes;
    return the total size.

    At most one batch is being consumed while the next is gathered, so memory stays near twice `batch_size` however
    large the body. Raises TooLarge as soon as the body passes `max_size`. When it returns, every byte has been
    consumed; when it raises, the thread is done with whatever it was given (no write runs on after a failure).
    An error from either side is raised as itself, not wrapped in an ExceptionGroup, so callers and the HTTP error
    handlers see the OSError, TooLarge or ClientDisconnect they expect.
    """
    # Buffer 0: `send` waits until the consumer takes the batch, i.e. until it has finished the previous one.
    send, receive = anyio.create_memory_object_stream[list[bytes]](0)
    size = 0
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_consume_all, receive, consume)
            async with send:
                size = await _gather(chunks, send, max_size=max_size, batch_size=batch_size)
    except BaseExceptionGroup as errors:
        error = _first(errors)
        raise error from error.__cause__
    return size


async def _gather(
    chunks: AsyncIterable[bytes], batches: ObjectSendStream[list[bytes]], *, max_size: int, batch_size: int
) -> int:
    size = 0
    batch: list[bytes] = []
    batched = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_size:
            raise TooLarge(f"The upload is larger than the limit of {max_size} bytes.")
        if not chunk:
            continue
        batch.append(chunk)  # a list, not a bytearray: no copy on the event loop
        batched += len(chunk)
        if batched >= batch_size:
            await batches.send(batch)
            batch, batched = [], 0
    if batch:
        await batches.send(batch)
    return size


async def _consume_all(batches: ObjectReceiveStream[list[bytes]], consume: Consume) -> None:
    async with batches:
        async for batch in batches:
            # Not abandoned on cancel: when the receiving side fails, we wait for this write to finish, so the
            # caller never closes or deletes a file under a running write.
            await anyio.to_thread.run_sync(consume, batch)
            del batch  # let go before waiting for the next: two batches alive at most, not three


def _first(errors: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that started it. The other side only adds echoes of it: a cancellation, or, when the thread's
    write failed, BrokenResourceError on the side still sending batches."""
    leaves = list(_leaves(errors))
    echoes = (anyio.get_cancelled_exc_class(), anyio.BrokenResourceError)
    return next((error for error in leaves if not isinstance(error, echoes)), leaves[0])


def _leaves(errors: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for error in errors.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error
