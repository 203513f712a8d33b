"""`lapse` as a user runs it against a real server: in-process through Typer's runner, with the server, key and
config folder given explicitly, so nothing from the developer's shell or home folder leaks in."""

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner, Result

from lapse.cli import app
from tests.process import LapseServer

MiB = 1024 * 1024


@dataclass
class Lapse:
    """A running server, a key for it, and an empty config folder: `run` is `lapse ARGS` as its user."""

    server: LapseServer
    key: str
    config_home: Path
    env: dict[str, str | None] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def environment(self, **overrides: str | None) -> dict[str, str | None]:
        """None unsets: the runner removes those variables while the command runs."""
        base: dict[str, str | None] = {
            "LAPSE_SERVER": self.url,
            "LAPSE_API_KEY": self.key,
            "XDG_CONFIG_HOME": str(self.config_home),
            "TTY_COMPATIBLE": None,
            "FORCE_COLOR": None,
        }
        return base | self.env | overrides

    def run(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        result = CliRunner().invoke(app, list(args), input=input, env=self.environment(**env))
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        assert self.key not in result.stdout + result.stderr, "the API key must never be printed"
        return result

    def ok(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        result = self.run(*args, input=input, **env)
        assert result.exit_code == 0, f"lapse {' '.join(args)} exited {result.exit_code}:\n{result.stderr}"
        return result

    def json_lines(self, *args: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.ok(*args, "--json").stdout.splitlines()]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The HTTP API straight, to set up or check what the CLI cannot be trusted to report about itself."""
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, timeout=30, trust_env=False) as client:
            return client.request(method, path, headers=headers, **kwargs)

    def link(self, link_id: str) -> dict[str, Any]:
        response = self.api("GET", f"/api/v1/links/{link_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def start_server(root: Path, env: Mapping[str, str]) -> Iterator[LapseServer]:
    server = LapseServer(root, f"sqlite:///{root / 'lapse.db'}", workers=1, env=env, name="cli")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        print(server.logs())  # shown by pytest when a test failed


def write_random(path: Path, size: int) -> Path:
    """Random bytes (so that no layer could compress or dedupe them), written a MiB at a time."""
    with path.open("wb") as file:
        for offset in range(0, size, MiB):
            file.write(os.urandom(min(MiB, size - offset)))
    return path


def lapse_subprocess(*args: str) -> list[str]:
    """`lapse ARGS` as a separate process of the interpreter running the tests (the package has __main__)."""
    return [sys.executable, "-m", "lapse", *args]


@contextmanager
def moved_to(base: str) -> Iterator[tuple[str, list[str]]]:
    """A server on another port of 127.0.0.1 that answers every request with 301 to the same path under `base` (a
    proxy sending a link elsewhere): its own base URL, and the methods it was asked."""
    asked: list[str] = []

    class Moved(BaseHTTPRequestHandler):
        def answer(self) -> None:
            asked.append(self.command)
            self.send_response(301)
            self.send_header("Location", base + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = answer  # noqa: N815 (http.server's naming)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Moved)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the certificate is its own authority: SSL_CERT_FILE names it)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return cert, key


@contextmanager
def tls_front(port: int, cert: Path, key: str | Path) -> Iterator[str]:
    """https://127.0.0.1:<its port> in front of a plain-http server on `port`, as a TLS-terminating proxy."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    opened: set[socket.socket] = set()

    def serve(raw: socket.socket) -> None:
        opened.add(raw)
        try:
            client = context.wrap_socket(raw, server_side=True)
            opened.add(client)
            backend = socket.create_connection(("127.0.0.1", port))
            opened.add(backend)
        except OSError:
            return
        answers = threading.Thread(target=pipe, args=(backend, client), daemon=True)
        answers.start()
        pipe(client, backend)
        answers.join(timeout=30)

    def accept() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(raw,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for sock in list(opened):
            sock.close()
