"""A real `lapse serve` with a low limit on open descriptors (RLIMIT_NOFILE), and clients that report exactly how
each transfer ended: complete, aborted part-way, or refused before any answer."""

import resource
from dataclasses import dataclass

import anyio

from tests.process import LapseServer


class LimitedServer(LapseServer):
    """`LapseServer` whose process may hold at most `nofile` descriptors. Set on the process as soon as it exists,
    before it has imported anything, let alone forked a worker (workers inherit it)."""

    def __init__(self, *args: object, nofile: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.nofile = nofile

    def launch(self) -> None:
        super().launch()
        assert self.process is not None
        resource.prlimit(self.process.pid, resource.RLIMIT_NOFILE, (self.nofile, self.nofile))


@dataclass(frozen=True)
class Transfer:
    """One GET as the client saw it on a raw socket: the status (None: no head arrived), the head's fields, the
    body bytes, and how the connection ended — `reset` (aborted: the client knows the transfer is cut) or a clean
    close, after which the body is whole only if it is as long as its Content-Length."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    reset: bool

    @property
    def complete(self) -> bool:
        return not self.reset and self.status is not None and len(self.body) == int(self.headers["content-length"])


async def transfer(host: str, port: int, path: str) -> Transfer:
    """GET `path` on a connection of its own (`Connection: close`) and read until the server ends it."""
    received = bytearray()
    reset = False
    try:
        async with await anyio.connect_tcp(host, port) as stream:
            await stream.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            while True:
                received += await stream.receive(1 << 20)
    except anyio.EndOfStream:
        pass
    except (anyio.BrokenResourceError, ConnectionResetError):
        reset = True
    head, separator, body = bytes(received).partition(b"\r\n\r\n")
    if not separator:
        return Transfer(None, {}, b"", reset)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return Transfer(int(status_line.split(" ")[1]), fields, body, reset)
