"""A bounded slowloris against 127.0.0.1: connections that say nothing, and connections that send a request head a
byte at a time and never finish it. Each records how the server ended it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import SocketStream, TaskGroup

HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 4096  # never ends: no blank line


@dataclass
class Loris:
    """One connection; `answer` is what the server sent before it closed the connection, `closed` set once it did."""

    dribble: bool
    answer: bytes = b""
    closed: anyio.Event = field(default_factory=anyio.Event)


@dataclass
class Slowloris:
    connections: list[Loris]

    def open(self) -> int:
        return sum(not c.closed.is_set() for c in self.connections)

    async def wait_all_closed(self) -> None:
        for connection in self.connections:
            await connection.closed.wait()


@asynccontextmanager
async def slowloris(port: int, *, idle: int, dribbling: int, every: float = 0.5) -> AsyncIterator[Slowloris]:
    """Open `idle` silent and `dribbling` slow-head connections (all connected before the block starts); the
    dribbling ones send one more byte of their head every `every` seconds. Closed when the block ends."""
    attack = Slowloris([Loris(dribble=False) for _ in range(idle)] + [Loris(dribble=True) for _ in range(dribbling)])
    async with anyio.create_task_group() as group:
        for connection in attack.connections:
            await group.start(_hold, port, connection, every)
        yield attack
        group.cancel_scope.cancel()


async def _hold(port: int, loris: Loris, every: float, *, task_status: anyio.abc.TaskStatus[None]) -> None:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    async with stream, anyio.create_task_group() as group:
        if loris.dribble:
            group.start_soon(_dribble, stream, every)
        task_status.started()
        await _read_until_closed(stream, loris, group)


async def _dribble(stream: SocketStream, every: float) -> None:
    for byte in HEAD:
        try:
            await stream.send(bytes([byte]))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return
        await anyio.sleep(every)  # the attack's pace, not synchronisation


async def _read_until_closed(stream: SocketStream, loris: Loris, group: TaskGroup) -> None:
    try:
        while True:
            loris.answer += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
        pass
    loris.closed.set()
    group.cancel_scope.cancel()
