"""`lapse serve`'s HTTP protocol: uvicorn's httptools protocol, with zero-copy sends (lapse.zerocopy) and two
guards against clients that hold connections without finishing a request.

- A head timeout. uvicorn closes a keep-alive connection idle after an answer, but never one that has not yet
  sent a whole request head: a client that connects and says nothing, or sends its head a byte at a time
  (slowloris), holds a connection — a descriptor — forever. Here a connection has `header_timeout` from its start,
  or from its last answer, to complete a request's head; then it gets 408 (if it began one) and is closed.
- A cap on open connections per worker, `max_connections` (by default half the process's descriptor limit, so
  that files, their duplicates and database connections always find descriptors). Past the cap, a new connection
  pushes out the connection that has waited longest for a request head — nginx reuses idle keep-alive connections
  the same way — so waiting clients can never lock out working ones; when every connection is busy with a
  request, the new one gets 503.

uvicorn's own `limit_concurrency` is not used: it counts idle connections too and answers every new request 503
while they are open, which turns a slowloris into a lock-out instead of preventing one.
"""

import functools
import inspect
import logging
import resource
import time
from asyncio import TimerHandle, Transport
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lapse.zerocopy import ZeroCopyHttpToolsProtocol

logger = logging.getLogger("lapse")

_TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY_503 = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n"


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float  # seconds
    max_connections: int


@functools.cache
def limits() -> ConnectionLimits:
    """This process's limits, from the settings (`lapse serve` puts its options there for its workers)."""
    from lapse.settings import Settings

    settings = Settings()
    return ConnectionLimits(
        header_timeout=settings.header_timeout.total_seconds(),
        max_connections=settings.max_connections or default_max_connections(),
    )


def default_max_connections() -> int:
    """Half the descriptors the process may open (at least 16)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(soft // 2, 16) if soft != resource.RLIM_INFINITY else 32768


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head timeout and the connection cap (see the module's docstring)."""

    _head_timer: TimerHandle | None = None
    _waiting_since: float | None = None  # monotonic time it began to wait for a request head; None: not waiting
    _head_begun = False

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > limits().max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        self._head_begun = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request's head is complete already: it starts at once
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._stop_waiting()
        self._waiting_since = time.monotonic()
        self._head_timer = self.loop.call_later(limits().header_timeout, self._head_timed_out)

    def _stop_waiting(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._waiting_since = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._let_go("connection.head_timeout")

    def _let_go(self, event: str) -> None:
        """Close a connection that is waiting for a request head: 408 if it began one, else just close."""
        self._stop_waiting()
        if self.transport.is_closing():
            return
        logger.debug("%s: %s", event, self.client)
        if self._head_begun:
            self.transport.write(_TIMEOUT_408)
        self.transport.close()

    def _make_room(self) -> None:
        waiting = [
            c
            for c in self.connections
            if isinstance(c, GuardedHttpToolsProtocol) and c is not self and c._waiting_since is not None
        ]
        if waiting:
            min(waiting, key=lambda c: c._waiting_since or 0.0)._let_go("connection.evicted")
            return
        logger.warning("connection.refused: %d connections open, every one busy with a request", len(self.connections))
        self._stop_waiting()
        self.transport.write(_BUSY_503)
        self.transport.close()


class LapseHttpToolsProtocol(GuardedHttpToolsProtocol, ZeroCopyHttpToolsProtocol):
    """The guards and zero-copy sends: what `lapse serve` runs while uvicorn has the hook zero-copy needs."""


def zero_copy_supported() -> bool:
    """Whether uvicorn still has the private hook lapse.zerocopy overrides, with the signature it expects."""
    hook = getattr(HttpToolsProtocol, "_start_asgi_task", None)
    if hook is None or not callable(hook):
        return False
    try:
        parameters = list(inspect.signature(hook).parameters)
    except (TypeError, ValueError):
        return False
    return parameters == ["self", "cycle", "app"]


def http_protocol() -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http` setting. Without the hook, one warning, and uvicorn's own way of
    sending: the app is offered no zero-copy and FileResponse sends the files (correct, only slower)."""
    if zero_copy_supported():
        return LapseHttpToolsProtocol
    logger.warning(
        "zerocopy.unavailable: uvicorn %s has no HttpToolsProtocol._start_asgi_task(cycle, app) to extend; files"
        " are sent through FileResponse instead of sendfile",
        uvicorn.__version__,
    )
    return GuardedHttpToolsProtocol
