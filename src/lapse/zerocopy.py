"""uvicorn's HTTP protocol plus the ASGI zero-copy send extension (`http.response.zerocopysend`).

Why by hand: sending a file inline through ASGI copies every byte through Python — a thread hop to read each piece,
then the event loop writes it — ~1 s of CPU per GiB against nginx's `sendfile` at ~0.1 s (docs/performance.md). The
ASGI spec has an extension for exactly this, but uvicorn implements neither it nor `pathsend`, and granian's
`pathsend` covers whole files only, while a resumed download (a Range) must be as fast as a full one.
So `lapse serve` runs uvicorn with this protocol: uvicorn's own, unchanged, except that plain-TCP requests get the
extension in their scope, and a `zerocopysend` message is sent with `os.sendfile`, from page cache to socket.

How: the headers are uvicorn's (its `send` wrote them); once its write buffer is empty, `sendfile` runs in a worker
thread in bursts — each goes until the socket's buffer is full, so the event loop never waits on a disk read — and
between bursts the loop waits for the socket to be writable. (Where a file system cannot give sendfile its pages,
the same bursts read and write through user space.) Both descriptors are duplicates owned here: uvicorn may
close the connection's (the client left) and the app its file (the task was cancelled) while a burst is still
running in its thread, and a number closed under it could be reused by another connection or file — whose bytes
would then go out here. The duplicates are closed only once no burst holds them. Then the body is completed through
uvicorn's `send` (an empty last piece), so its bookkeeping — Content-Length, keep-alive, the next pipelined
request — stays its own.

Out of descriptors: the app opens the file before it counts a download, so a process with none left mostly refuses
then (503, nothing counted). The two duplicates are taken when the file is sent; if that, or anything else, fails
once the headers are out, the connection is aborted with a reset: uvicorn would close it cleanly, and a client
reading to the end of the connection would take the headers and a short body for a whole download. A reset is a
cut transfer, which the download's grant resumes for free.
"""

import asyncio
import contextlib
import errno
import os
import socket
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

EXTENSION = "http.response.zerocopysend"  # lapse.api.file_responses.ZERO_COPY: the app does not import servers
MAX_BURST = 16 * 1024 * 1024  # one thread hop sends at most this; a socket's buffer usually stops it sooner
LOOK_AGAIN = 1.0  # seconds a send waits on a full socket before it looks whether uvicorn dropped the connection
COPY_PIECE = 256 * 1024  # what one read-and-write moves where sendfile cannot
# The client, or the way to it, is gone: stop quietly, as uvicorn does when a write fails.
_GONE = frozenset(
    (
        errno.EPIPE,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ENOTCONN,
        errno.ESHUTDOWN,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
    )
)
# sendfile refuses a file whose file system cannot hand it pages (EINVAL): copy through user space instead.
_NO_SENDFILE = frozenset((errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP))
# Bursts get their own threads: on the loop's default executor a slow disk could starve its getaddrinfo calls,
# and they it. Eight: a burst only blocks on a disk read (the socket is non-blocking).
_BURSTS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lapse-sendfile")


class ZeroCopyHttpToolsProtocol(HttpToolsProtocol):
    """`lapse serve`'s `--http` protocol: see the module's docstring."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        sock = self.transport.get_extra_info("socket")
        send: _ZeroCopySend | None = None
        # TLS encrypts in user space: no sendfile. Only a GET (or a password POST) sends a file's bytes.
        if sock is not None and self.scheme == "http" and cycle.scope["method"] in ("GET", "POST"):
            send = _ZeroCopySend(cycle, cycle.send, sock.fileno())
            cycle.scope["extensions"] = {**cycle.scope.get("extensions", {}), EXTENSION: {}}
            # An instance attribute: `run_asgi` hands the app `self.send`, so this is the one the app gets.
            cycle.send = send  # type: ignore[method-assign]
        super()._start_asgi_task(cycle, _Guarded(app, cycle, send))


class _Guarded:
    """The app, run so that an answer it cannot finish is ABORTED (a reset), never closed as if it were whole: a
    client reading to the end of the connection (HTTP/1.0 style) would take a clean close after the headers for
    a complete, maybe empty, file. uvicorn closes cleanly then, so this acts first. It also releases the
    descriptors the request reserved, once nothing sends from them."""

    __slots__ = ("app", "cycle", "send")

    def __init__(self, app: Any, cycle: RequestResponseCycle, send: "_ZeroCopySend | None") -> None:
        self.app = app
        self.cycle = cycle
        self.send = send

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            cycle = self.cycle
            if cycle.response_started and not cycle.response_complete and not cycle.disconnected:
                abort(cycle.transport)
            if self.send is not None and self.send.fds is not None:
                self.send.fds.release()


def abort(transport: Any) -> None:
    """Close the connection with a reset (RST), which no client mistakes for the end of a response."""
    sock = transport.get_extra_info("socket")
    if sock is not None and not transport.is_closing():
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _ZeroCopySend:
    __slots__ = ("cycle", "fds", "send", "socket_fd")

    def __init__(self, cycle: RequestResponseCycle, send: Callable[[Any], Any], socket_fd: int) -> None:
        self.cycle = cycle
        self.send = send
        self.socket_fd = socket_fd
        # Taken when a file is sent, not for every request: duplicating two descriptors per request cost a fifth
        # of a small download's CPU. Should none be left then, the answer is reset (`_Guarded`), never passed off as
        # whole; the file itself was opened before counting, so a process out of descriptors mostly refuses first.
        self.fds: _Descriptors | None = None

    async def __call__(self, message: Any) -> None:
        if message["type"] != EXTENSION:
            await self.send(message)
            return
        cycle = self.cycle
        if cycle.disconnected:  # uvicorn's own `send` ignores every message then, the response's start included
            return
        if not cycle.response_started or cycle.response_complete:
            raise RuntimeError(f"Unexpected ASGI message {EXTENSION!r} outside a response body.")
        if cycle.chunked_encoding:
            raise RuntimeError(f"{EXTENSION!r} needs a Content-Length.")
        more_body = bool(message.get("more_body", False))
        if cycle.scope["method"] == "HEAD":
            await self.send({"type": "http.response.body", "body": b"", "more_body": more_body})
            return
        file_fd = message["file"].fileno()
        offset = message.get("offset")
        if offset is None:
            offset = os.lseek(file_fd, 0, os.SEEK_CUR)
        count = message.get("count")
        if count is None:
            count = os.fstat(file_fd).st_size - offset
        if offset < 0 or count < 0:
            raise RuntimeError(f"{EXTENSION!r} needs a non-negative offset and count.")
        if count > cycle.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        await _flushed(cycle)
        if not _open(cycle):
            _drop(cycle)
            return
        if self.fds is None:
            self.fds = _Descriptors(self.socket_fd)  # no await since `_open`: still this connection's descriptor
        self.fds.hold(file_fd)
        if not await _sendfile(self.fds, offset, count, still_open=lambda: _open(cycle)):
            _drop(cycle)
            return
        cycle.expected_content_length -= count
        await self.send({"type": "http.response.body", "body": b"", "more_body": more_body})


def _open(cycle: RequestResponseCycle) -> bool:
    return not cycle.disconnected and not cycle.transport.is_closing()


def _drop(cycle: RequestResponseCycle) -> None:
    """The client left part-way: what uvicorn does when a write fails — drop the connection, send no more."""
    cycle.disconnected = True
    cycle.transport.close()


async def _flushed(cycle: RequestResponseCycle) -> None:
    """Wait until uvicorn's write buffer (the status line and headers, normally gone at once) reached the socket:
    rare, a client that is not reading. A high-water mark of 0 makes uvicorn's own flow control wait for empty."""
    transport = cycle.transport
    if not transport.get_write_buffer_size():
        return
    low, high = transport.get_write_buffer_limits()
    transport.set_write_buffer_limits(high=0)
    try:
        await cycle.flow.drain()
    finally:
        if not transport.is_closing():
            transport.set_write_buffer_limits(high=high, low=low)


class _Descriptors:
    """A duplicate of the socket and a slot for one of the file, both taken before the first burst. `hold` puts the
    file in the slot with dup2, onto a number this owns (that cannot run out). Closed once the request is done and
    no burst uses them."""

    def __init__(self, socket_fd: int) -> None:
        self.socket = os.dup(socket_fd)
        try:
            self.file = os.dup(socket_fd)  # a placeholder until `hold`
        except BaseException:
            os.close(self.socket)
            raise
        self.burst: asyncio.Future[int] | None = None
        self.closed = False

    def hold(self, file_fd: int) -> None:
        os.dup2(file_fd, self.file, inheritable=False)

    def release(self) -> None:
        if self.burst is not None and not self.burst.done():  # cancelled while a burst runs: it still holds them
            self.burst.add_done_callback(self._close)
        else:
            self._close()

    def _close(self, burst: "asyncio.Future[int] | None" = None) -> None:
        if burst is not None and not burst.cancelled():
            burst.exception()  # retrieved: nobody awaits the burst of a task that was cancelled meanwhile
        if not self.closed:
            self.closed = True
            os.close(self.socket)
            os.close(self.file)


async def _sendfile(fds: _Descriptors, offset: int, count: int, *, still_open: Callable[[], bool]) -> bool:
    """Send `count` bytes of the file from `offset`; False when the client went away first (the socket's error
    says so, or uvicorn saw it: our duplicate keeps the socket open after uvicorn closed its own, so a burst
    alone would not notice a connection uvicorn dropped)."""
    loop = asyncio.get_running_loop()
    end = offset + count
    try:
        while offset < end:
            size = min(end - offset, MAX_BURST)
            fds.burst = loop.run_in_executor(_BURSTS, _burst, fds.socket, fds.file, offset, size)
            offset += await asyncio.shield(fds.burst)
            while offset < end:  # until the socket takes more, looking at the connection every LOOK_AGAIN
                writable = await _writable(loop, fds.socket)
                if not still_open():
                    return False
                if writable:
                    break
    except OSError as exc:
        if exc.errno in _GONE:
            return False
        raise
    return True


def _burst(socket_fd: int, file_fd: int, offset: int, count: int) -> int:
    """sendfile until `count` bytes are sent or the socket's buffer is full; how many were sent."""
    send: Callable[[int, int, int, int], int] = os.sendfile
    sent = 0
    while sent < count:
        try:
            n = send(socket_fd, file_fd, offset + sent, count - sent)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno not in _NO_SENDFILE or send is _copy:
                raise
            send = _copy
            continue
        if n == 0:  # the file is shorter than promised: it changed under us
            raise OSError(errno.EIO, "file ended before the promised count")
        sent += n
    return sent


def _copy(socket_fd: int, file_fd: int, offset: int, count: int) -> int:
    """sendfile's work through user space, a piece at a time. A piece the socket takes only part of is read
    again from where it stopped: reads are by offset, nothing is kept between calls."""
    piece = os.pread(file_fd, min(count, COPY_PIECE), offset)
    return os.write(socket_fd, piece) if piece else 0


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> bool:
    """True once the socket takes more; False after LOOK_AGAIN seconds without: uvicorn may have dropped the
    connection (the client half-closed it, say) while our duplicate keeps its socket open, and then it may never
    turn writable."""
    ready: asyncio.Future[bool] = loop.create_future()

    def wake(writable: bool) -> None:
        if not ready.done():
            ready.set_result(writable)

    loop.add_writer(fd, wake, True)
    timer = loop.call_later(LOOK_AGAIN, wake, False)
    try:
        return await ready
    finally:
        timer.cancel()
        loop.remove_writer(fd)
