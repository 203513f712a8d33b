"""The worker-thread half of an upload: hash each batch (on a thread beside) while writing it with writev, and start
its writeback early.

Why early writeback: the blob must be fsynced before its row is committed (an upload answered 201 survives a
crash). Left alone, the kernel keeps a 1 GiB upload dirty in memory and that final fsync then writes all of it while
the client waits (~0.3 s per GiB here). Asking for writeback as we go overlaps the disk with receiving; the final
fsync, still made, finds little left to do.
"""

import ctypes
import errno
import hashlib
import io
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

# writev(2) takes at most this many buffers per call (IOV_MAX on Linux).
MAX_IOV = 1024
# How much is written before its writeback is started: large enough for few calls, small enough to overlap.
WRITEBACK_EVERY = 8 * 1024 * 1024
SYNC_FILE_RANGE_WRITE = 2  # from <fcntl.h>: start writeback of dirty pages in the range, do not wait

StartWriteback = Callable[[int, int, int], None]


def _no_writeback(fd: int, offset: int, length: int) -> None:
    """Where sync_file_range does not exist: the final fsync does all the writing, as it always may."""


def _load_sync_file_range() -> StartWriteback:
    """Linux's sync_file_range(2), which the os module lacks; a no-op elsewhere."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError, TypeError):
        return _no_writeback
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int

    def start_writeback(fd: int, offset: int, length: int) -> None:
        # Advisory, so its result is ignored: a write error it meets is reported again by the final fsync.
        function(fd, offset, length, SYNC_FILE_RANGE_WRITE)

    return start_writeback


start_writeback: StartWriteback = _load_sync_file_range()


# sha256 beside the writes: each half costs ~0.3-0.8 s per GiB here, and hashlib and writev both release the GIL,
# so a batch takes the longer of the two instead of their sum (docs/performance.md, Uploads).
# A batch is only handed over when a hashing thread is free: with more uploads at once than threads, waiting in
# the pool's queue would cost more than hashing in line, as before.
HASHERS = max(2, os.cpu_count() or 2)
_HASHING = ThreadPoolExecutor(max_workers=HASHERS, thread_name_prefix="lapse-sha256")
_FREE_HASHERS = threading.BoundedSemaphore(HASHERS)
HASH_BESIDE = 256 * 1024  # a smaller batch (a small file) is hashed in line: the hand-off would cost more


def _hash(digest: "hashlib._Hash", batch: list[bytes]) -> None:
    for chunk in batch:
        digest.update(chunk)


def _hash_beside(digest: "hashlib._Hash", batch: list[bytes]) -> "Future[None] | None":
    """The batch being hashed on a free hashing thread, or None when none is free (then hash it in line)."""
    if not _FREE_HASHERS.acquire(blocking=False):
        return None
    try:
        hashed = _HASHING.submit(_hash, digest, batch)
    except BaseException:
        _FREE_HASHERS.release()
        raise
    hashed.add_done_callback(lambda _: _FREE_HASHERS.release())
    return hashed


class BlobWriter:
    """Takes the pipeline's batches, one at a time, in a worker thread; each batch is hashed on another meanwhile."""

    def __init__(self, file: io.FileIO) -> None:
        self.file = file
        self.digest = hashlib.sha256()
        self.size = 0
        self._written_back = 0  # start of the range whose writeback is not yet asked for

    def __call__(self, batch: list[bytes]) -> None:
        size = sum(map(len, batch))
        hashed = _hash_beside(self.digest, batch) if size >= HASH_BESIDE else None
        if hashed is None:
            _hash(self.digest, batch)
            self._write(batch)
        else:
            try:
                self._write(batch)
            except BaseException:
                hashed.exception()  # wait: the digest is done with this batch; the write's error is the one to tell
                raise
            hashed.result()  # the digest is done with this batch before the next can reach it
        self.size += size
        if self.size - self._written_back >= WRITEBACK_EVERY:
            start_writeback(self.file.fileno(), self._written_back, self.size - self._written_back)
            self._written_back = self.size

    def _write(self, batch: list[bytes]) -> None:
        for start in range(0, len(batch), MAX_IOV):
            _writev_all(self.file.fileno(), batch[start : start + MAX_IOV])


def _writev_all(fd: int, buffers: Sequence[bytes]) -> None:
    """writev until every byte is out (no copy): it may write less than asked (a signal, a nearly full disk)."""
    pending: Sequence[bytes | memoryview] = buffers
    while pending:
        written = os.writev(fd, pending)
        if written <= 0:
            raise OSError(errno.EIO, "writev wrote nothing")  # never spin on a file that takes no bytes
        done = 0
        while done < len(pending) and written >= len(pending[done]):  # whole buffers that went out
            written -= len(pending[done])
            done += 1
        pending = pending[done:]
        if written:  # and the part of the next one that did
            pending = [memoryview(pending[0])[written:], *pending[1:]]
