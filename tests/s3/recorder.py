"""A recording proxy in the store's place: Lapse's S3 endpoint names it, so its presigned URLs point here, and every
request a client sends to "the store" passes through, its head recorded, on its way to the RGW (which checks the
signature against the Host the client sent, this proxy's). A test can also have it hold a presigned request until
its URL has expired (the RGW then refuses it, really), refuse one itself (403), or bend one byte of the store's
answer.

Threads and plain sockets, so that it runs beside a CLI invoked synchronously in the test."""

import contextlib
import socket
import threading
import time
from calendar import timegm
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in the order sent

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query))

    @property
    def presigned(self) -> bool:
        return "X-Amz-Signature" in self.query

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name.lower()), None)

    def expires_at(self) -> float:
        signed = timegm(time.strptime(self.query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        return signed + int(self.query["X-Amz-Expires"])


def _parse(head: bytes) -> Seen:
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = tuple((name.strip().lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines))
    return Seen(method=method, target=target, headers=headers)


class RecordingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._sockets: set[socket.socket] = set()
        self.expire_next = 0  # presigned requests held until their URL has expired
        self.bend_next = 0  # presigned requests whose answer gets one body byte changed
        self.refuse_next = 0  # presigned requests answered 403 here, as a store refusing its URL

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
            self.expire_next = self.bend_next = self.refuse_next = 0

    def presigned(self) -> list[Seen]:
        """The requests sent to a presigned URL (Lapse's own, SigV4-signed calls to the store are not among them)."""
        with self._lock:
            return [seen for seen in self._seen if seen.presigned]

    def _take(self, counter: str) -> bool:
        with self._lock:
            left: int = getattr(self, counter)
            if left:
                setattr(self, counter, left - 1)
            return bool(left)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets |= {client, upstream}
        bend = threading.Event()
        threading.Thread(target=self._answers, args=(upstream, client, bend), daemon=True).start()
        try:
            self._requests(client, upstream, bend)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _requests(self, client: socket.socket, upstream: socket.socket, bend: threading.Event) -> None:
        """Each request's head is read and recorded, then passed on with its body (Content-Length bodies only:
        a chunked one is passed on as it comes, and nothing after it on that connection is parsed)."""
        buffer = b""
        while True:
            while HEAD_END not in buffer:
                if not (data := client.recv(65536)):
                    return
                buffer += data
            head, _, buffer = buffer.partition(HEAD_END)
            seen = _parse(head)
            with self._lock:
                self._seen.append(seen)
            if seen.presigned and self._take("expire_next"):
                while time.time() < seen.expires_at() + 1.5:  # the store's clock is this machine's
                    time.sleep(0.05)
            if seen.presigned and self._take("refuse_next"):
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            if seen.presigned and self._take("bend_next"):
                bend.set()
            upstream.sendall(head + HEAD_END)
            if (seen.header("transfer-encoding") or "").lower() == "chunked":
                upstream.sendall(buffer)
                while data := client.recv(65536):
                    upstream.sendall(data)
                return
            length = int(seen.header("content-length") or 0)
            body, buffer = buffer[:length], buffer[length:]
            upstream.sendall(body)
            length -= len(body)
            while length > 0:
                if not (data := client.recv(min(length, 65536))):
                    return
                upstream.sendall(data)
                length -= len(data)

    def _answers(self, upstream: socket.socket, client: socket.socket, bend: threading.Event) -> None:
        """The store's answers, passed back; with `bend` set, the first body byte after the next head is flipped."""
        pending = b""  # while bending: what arrived of the answer's head so far
        try:
            while data := upstream.recv(65536):
                if bend.is_set():
                    pending += data
                    at = pending.find(HEAD_END)
                    if at < 0 or at + len(HEAD_END) >= len(pending):
                        continue
                    at += len(HEAD_END)
                    data = pending[:at] + bytes([pending[at] ^ 0xFF]) + pending[at + 1 :]
                    pending = b""
                    bend.clear()
                client.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
