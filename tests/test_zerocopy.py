"""The zero-copy send extension of `lapse serve`'s uvicorn protocol (lapse.zerocopy), under a real uvicorn on both
event loops it may run on, with a small ASGI app that sends a file the way the spec describes."""

import asyncio
import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from lapse import zerocopy
from lapse.api.file_responses import ZERO_COPY
from lapse.zerocopy import EXTENSION, ZeroCopyHttpToolsProtocol
from tests.helpers import free_port

SIZE = 8 * 1024 * 1024  # more than a loopback socket's buffer holds: sends wait for the client between bursts
BIG = 256 * 1024 * 1024  # more than the socket buffers of both ends hold: a client that stops reading stalls it
PLAIN = 64 * 1024 * 1024


class FileApp:
    """GET /?offset=&count=&seek=&lead=&tail=&length=&big=&early=: the file's bytes (offset/count as given, or
    left out), `seek` moves the file's position first, `lead` zeros are sent before it and `tail` after it as
    plain body messages, `length`
    overrides the Content-Length ("none": no Content-Length), `big` sends the big (sparse) file, `early` sends
    the file before the response's start, `late` waits for the client to leave before it starts. GET /plain
    answers PLAIN zeros the ordinary way, GET /extensions the extensions in the scope. `failures` holds what any
    send raised, `finished` counts the file requests it is done with."""

    def __init__(self, path: Path, big: Path) -> None:
        self.path = path
        self.big = big
        self.failures: list[Exception] = []
        self.finished = 0  # file requests the app is done with, failed or not

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/plain":  # PLAIN zeros as one ordinary body message
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % PLAIN)]})
            await send({"type": "http.response.body", "body": bytes(PLAIN)})
            return
        if scope["path"] == "/extensions":
            body = ",".join(sorted(scope.get("extensions", {}))).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        try:
            await self.send_file(scope, receive, send)
        except Exception as exc:
            self.failures.append(exc)
            raise
        finally:
            self.finished += 1

    async def send_file(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        lead = bytes(int(query.get("lead", 0)))
        tail = query.get("tail", "").encode()
        path = self.big if "big" in query else self.path
        with path.open("rb", buffering=0) as file:
            file.seek(int(query.get("seek", 0)))
            offset = int(query["offset"]) if "offset" in query else None
            count = int(query["count"]) if "count" in query else None
            start = offset if offset is not None else file.tell()
            length = str(len(lead) + (count if count is not None else path.stat().st_size - start) + len(tail))
            length = query.get("length", length)
            headers = [] if length == "none" else [(b"content-length", length.encode())]
            message: dict[str, object] = {"type": EXTENSION, "file": file, "more_body": bool(tail)}
            if offset is not None:
                message["offset"] = offset
            if count is not None:
                message["count"] = count
            if "early" in query:
                await send(message)
            while "late" in query and (await receive())["type"] != "http.disconnect":
                pass
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if lead:
                await send({"type": "http.response.body", "body": lead, "more_body": True})
            await send(message)
            if tail:
                await send({"type": "http.response.body", "body": tail})


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path_factory.mktemp("zerocopy") / "file.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zerocopy") / "big.bin"
    with path.open("wb") as file:
        file.truncate(BIG)  # sparse: zeros, no disk
    return path


class Served:
    """A uvicorn with the zero-copy protocol on one event loop, in a thread of its own."""

    def __init__(self, app: FileApp, loop: str) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            loop=loop,
            http=ZeroCopyHttpToolsProtocol,
            ws="none",  # as `lapse serve`: older uvicorns load websockets' deprecated API otherwise
            lifespan="off",
            log_level="critical",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        _eventually(lambda: self.server.started)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive()


@pytest.fixture(params=["asyncio", "uvloop"])
def served(request: pytest.FixtureRequest, content: tuple[Path, bytes], big: Path) -> Iterator[Served]:
    running = Served(FileApp(content[0], big), request.param)
    yield running
    running.stop()


@pytest.fixture
def server(served: Served) -> str:
    return served.url


def get(url: str, **params: str | int) -> httpx.Response:
    return httpx.get(url, params=params, timeout=30, trust_env=False)


def test_the_app_names_the_extension_the_protocol_offers() -> None:
    assert ZERO_COPY == EXTENSION


def test_plain_tcp_requests_are_offered_the_extension(server: str) -> None:
    assert get(server + "/extensions").text == EXTENSION


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, slice(None)),  # neither: from the file's position to its end
        ({"offset": 0, "count": SIZE}, slice(None)),
        ({"offset": 5, "count": 1}, slice(5, 6)),
        ({"offset": SIZE // 2 + 3}, slice(SIZE // 2 + 3, None)),  # no count: to the end
        ({"seek": 1000, "count": 3 * 1024 * 1024}, slice(1000, 1000 + 3 * 1024 * 1024)),  # no offset: the position
        ({"offset": SIZE - 1, "count": 1}, slice(SIZE - 1, None)),
    ],
)
def test_the_bytes_asked_for_are_sent_exactly(
    server: str, content: tuple[Path, bytes], params: dict[str, int], expected: slice
) -> None:
    response = get(server, **params)
    assert response.status_code == 200
    assert response.content == content[1][expected]


def test_a_body_may_follow_the_file(server: str, content: tuple[Path, bytes]) -> None:
    response = get(server, offset=10, count=4096, tail="-- end")
    assert response.content == content[1][10:4106] + b"-- end"


def test_the_file_waits_for_what_uvicorn_still_holds_to_send(served: Served, content: tuple[Path, bytes]) -> None:
    # A client not reading yet: most of the leading body stays in uvicorn's write buffer, and the file's bytes,
    # sent around that buffer, must go after it.
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(b"GET /?lead=%d&offset=5&count=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (PLAIN, SIZE - 5))
        _eventually(lambda: _held_by_uvicorn(served))
        [body] = _read_responses(sock, 1)
    assert body == bytes(PLAIN) + content[1][5:]


def test_head_gets_the_headers_only(server: str) -> None:
    response = httpx.head(server, params={"count": 1024}, timeout=30, trust_env=False)
    assert response.status_code == 200
    assert response.headers["content-length"] == "1024"
    assert response.content == b""


@pytest.mark.parametrize(
    "params",
    [
        {"offset": 0, "count": 100, "length": 99},  # more than the Content-Length
        {"count": 100, "length": "none"},  # no Content-Length: the extension cannot frame a chunked body
        {"offset": SIZE - 10, "count": 20},  # past the end of the file: it changed under us
        {"offset": 0, "count": -5, "length": 10},
    ],
)
def test_a_send_that_cannot_be_kept_drops_the_connection_and_the_server_carries_on(
    server: str, params: dict[str, str | int]
) -> None:
    with pytest.raises(httpx.ReadError, match="reset"):  # the response was started: the connection is aborted
        get(server, **params)
    assert get(server, offset=0, count=100).status_code == 200


def test_a_file_before_the_response_starts_is_an_error(server: str) -> None:
    assert get(server, count=10, early=1).status_code == 500


def _read_responses(sock: socket.socket, how_many: int) -> list[bytes]:
    """Bodies of `how_many` Content-Length responses, read in order off one connection."""
    buffer, bodies = bytearray(), list[bytes]()
    while len(bodies) < how_many:
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer += sock.recv(1 << 20)
        fields = (line.partition(b": ") for line in bytes(buffer[:end]).split(b"\r\n"))
        length = int(next(value for name, _, value in fields if name == b"content-length"))
        del buffer[: end + 4]
        while len(buffer) < length:
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed mid-body"
            buffer += chunk
        bodies.append(bytes(buffer[:length]))
        del buffer[:length]
    return bodies


def test_pipelined_requests_to_a_client_that_reads_late_arrive_whole_and_in_order(
    served: Served, content: tuple[Path, bytes]
) -> None:
    # The plain answer sits in uvicorn's own write buffer, and the next one's headers behind it; the file bytes
    # sent around that buffer must not overtake either.
    spans = [(123, 4 * 1024 * 1024), (SIZE - 10, 10)]
    requests = ["GET /plain HTTP/1.1\r\nHost: x\r\n\r\n"]
    requests += [f"GET /?offset={o}&count={c} HTTP/1.1\r\nHost: x\r\n\r\n" for o, c in spans]
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall("".join(requests).encode())
        _eventually(lambda: _held_by_uvicorn(served))
        bodies = _read_responses(sock, len(requests))
    assert bodies[0] == bytes(PLAIN)
    assert bodies[1:] == [content[1][o : o + c] for o, c in spans]


def _held_by_uvicorn(served: Served) -> bool:
    """Whether uvicorn's write buffer holds bytes no socket took yet: the client is not reading."""
    try:
        connections = list(served.server.server_state.connections)
    except RuntimeError:  # the server's thread changed the set meanwhile: look again
        return False
    return any(c.transport.get_write_buffer_size() > 0 for c in connections)


def _descriptors_on(path: Path) -> int:
    """How many of this process's descriptors (the server runs in it) point at `path`."""
    found = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found += fd.readlink() == path
        except OSError:
            continue
    return found


def _eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _stalled_download(served: Served, big: Path) -> socket.socket:
    """A connection whose client stopped reading part-way through the big file."""
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    sock.sendall(b"GET /?big=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    _eventually(lambda: _descriptors_on(big) == 2)  # the app's file and the duplicate being sent from
    return sock


def test_a_client_leaving_mid_file_releases_every_descriptor(
    served: Served, big: Path, content: tuple[Path, bytes]
) -> None:
    sock = _stalled_download(served, big)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset, as from a closed tab
    sock.close()
    _eventually(lambda: _descriptors_on(big) == 0)
    assert get(served.url, offset=7, count=7).content == content[1][7:14]
    assert served.app.failures == []


def test_a_connection_uvicorn_drops_mid_file_is_let_go_though_the_socket_never_drains(
    served: Served, big: Path
) -> None:
    # A half-close makes uvicorn drop the connection, but the client holds its end open without reading: only
    # looking again at the connection, not waiting for the socket, ends the send.
    with _stalled_download(served, big) as sock:
        sock.shutdown(socket.SHUT_WR)
        _eventually(lambda: _descriptors_on(big) == 0)


def test_a_client_gone_before_the_response_starts_is_no_error(served: Served, content: tuple[Path, bytes]) -> None:
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    sock.sendall(b"GET /?late=1&count=100 HTTP/1.1\r\nHost: x\r\n\r\n")
    _eventually(lambda: _descriptors_on(content[0]) == 1)  # the app holds the file, waiting for the client to go
    sock.close()
    _eventually(lambda: served.app.finished == 1)
    assert served.app.failures == []
    assert _descriptors_on(content[0]) == 0


def test_a_file_sendfile_cannot_read_is_copied_through_user_space(
    server: str, content: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = []

    def no_sendfile(*args: int) -> int:  # what a file system that cannot hand out its pages answers
        refused.append(args)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "sendfile", no_sendfile)
    response = get(server, offset=3, count=SIZE - 3)
    assert response.content == content[1][3:]
    assert refused


def test_a_stalled_send_is_cancelled_at_shutdown_and_releases_every_descriptor(served: Served, big: Path) -> None:
    with _stalled_download(served, big):
        served.stop()  # past its graceful timeout uvicorn cancels the task, which waits on the socket
        assert _descriptors_on(big) == 0


def test_a_client_leaving_while_uvicorn_still_holds_the_start_of_the_answer_releases_the_file(
    served: Served, content: tuple[Path, bytes]
) -> None:
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    sock.sendall(b"GET /?lead=%d&count=100 HTTP/1.1\r\nHost: x\r\n\r\n" % PLAIN)
    _eventually(lambda: _descriptors_on(content[0]) == 1)  # the app has it open: the send waits on the buffer
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    _eventually(lambda: _descriptors_on(content[0]) == 0)
    assert get(served.url, offset=7, count=7).content == content[1][7:14]


def test_a_stalled_client_costs_no_burst_while_the_connection_is_only_looked_at(
    served: Served, big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bursts: list[int] = []
    real_burst = zerocopy._burst

    def counted(socket_fd: int, file_fd: int, offset: int, count: int) -> int:
        bursts.append(offset)
        return real_burst(socket_fd, file_fd, offset, count)

    monkeypatch.setattr(zerocopy, "_burst", counted)
    looks: list[bool] = []  # each look at a full socket: True once it took more, False after LOOK_AGAIN without
    real_writable = zerocopy._writable

    async def looked(loop: asyncio.AbstractEventLoop, fd: int) -> bool:
        looks.append(await real_writable(loop, fd))
        return looks[-1]

    monkeypatch.setattr(zerocopy, "_writable", looked)
    monkeypatch.setattr(zerocopy, "LOOK_AGAIN", 0.05)
    with _stalled_download(served, big):
        _eventually(lambda: False in looks)  # the socket buffers are full: a look found no room
        first, before = looks.index(False), len(bursts)  # every burst before that look has been counted
        _eventually(lambda: looks[first:].count(False) >= 10)  # ten more looks at the connection
        assert len(bursts) == before
