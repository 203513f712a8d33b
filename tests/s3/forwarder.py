"""A TCP forwarder in front of the RGW: the app talks to the store through it, and a test cuts the line (every
open connection dropped, new ones refused) and mends it again, as when a store goes down and comes back.

With `record`, it keeps what clients sent (request heads: the requests these tests make carry no body), so a test
can see exactly which headers reached the store. `ForwarderThread` runs one on an event loop of its own, for
servers that outlive a test's loop (a module's nginx and `lapse serve`)."""

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tests.s3.rgw import free_port

T = TypeVar("T")


class Forwarder:
    def __init__(self, target_port: int, *, record: bool = False) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.record = record
        self._sent: list[bytearray] = []  # per connection, what the client sent
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request_heads(self) -> list[bytes]:
        """Every request head recorded so far, in order within each connection."""
        heads: list[bytes] = []
        for sent in list(self._sent):
            heads += [head for head in bytes(sent).split(b"\r\n\r\n") if head]
        return heads

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def _connect(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            store_reader, store_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, store_writer}
        sent = None
        if self.record:
            sent = bytearray()
            self._sent.append(sent)
        for reader, writer, log in ((client_reader, store_writer, sent), (store_reader, client_writer, None)):
            task = asyncio.create_task(self._pipe(reader, writer, log))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: bytearray | None) -> None:
        try:
            while data := await reader.read(256 * 1024):
                if log is not None:
                    log += data
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            self._writers.discard(writer)


class ForwarderThread:
    """A Forwarder on its own thread's event loop; `start`, `stop` and `close` block until done."""

    def __init__(self, target_port: int, *, record: bool = False) -> None:
        self.forwarder = Forwarder(target_port, record=record)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="forwarder", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.forwarder.port

    @property
    def endpoint(self) -> str:
        return self.forwarder.endpoint

    def request_heads(self) -> list[bytes]:
        return self._loop_call(self._heads)

    async def _heads(self) -> list[bytes]:
        return self.forwarder.request_heads()  # read on the loop that writes them

    def _loop_call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(30)

    def start(self) -> None:
        self._loop_call(self.forwarder.start)

    def stop(self) -> None:
        self._loop_call(self.forwarder.stop)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
