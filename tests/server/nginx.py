"""A real nginx in front of a real `lapse serve`, configured from the repo's deploy/nginx/lapse.conf.

The site file is used as shipped, with only its placeholders (Lapse's address, the listen address, the blob folder)
replaced, inside a main config of our own: a temp prefix, a pid file, and an access log that names the location
which answered (`$uri` is the internal location after an X-Accel-Redirect). Stopped by its process group.

With a `StoreProxy`, the S3 files (deploy/nginx/lapse-s3-*.conf) are switched on as their comments say, pointed
at a store on 127.0.0.1 over plain HTTP.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port
from tests.process import LapseServer

DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "lapse.conf"
S3_LOCATIONS = DEPLOY_CONF.with_name("lapse-s3-locations.conf")
S3_COMMON = DEPLOY_CONF.with_name("lapse-s3-common.conf")
START_TIMEOUT = 15.0
MAIN_CONF = """
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx.error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format accel '$request_uri $uri $status $body_bytes_sent';
    access_log {root}/nginx.access.log accel;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/lapse.conf;
}}
"""


@dataclass(frozen=True)
class StoreProxy:
    """Where nginx's S3 locations send their requests (`port` on 127.0.0.1), and the Host the URLs are signed
    for (LAPSE_S3_ENDPOINT's), which may be another address in front of the same store."""

    port: int
    signed_host: str


def _replaced(path: Path, replacements: Mapping[str, str]) -> str:
    text = path.read_text()
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in {path}"
        text = text.replace(old, new)
    return text


def s3_configs(store: StoreProxy) -> dict[str, str]:
    """deploy/nginx/lapse-s3-*.conf, by file name, for a plain-HTTP store at `store`."""
    return {
        S3_LOCATIONS.name: _replaced(
            S3_LOCATIONS, {"proxy_pass https://lapse_store;": "proxy_pass http://lapse_store;"}
        ),
        S3_COMMON.name: _replaced(S3_COMMON, {"s3.example.org": store.signed_host}),
    }


def site_config(
    *,
    lapse_port: int,
    port: int,
    blobs: Path,
    root: Path,
    replace: Mapping[str, str] | None = None,
    store: StoreProxy | None = None,
) -> str:
    """deploy/nginx/lapse.conf with its placeholders (and `replace`'s strings) replaced; each must be there. Its
    access log goes to `root`/site.access.log, beside the tests' own (which names the location that answered).
    With `store`, its S3 lines are uncommented and its upstream is the store's."""
    s3 = {}
    if store is not None:
        s3 = {
            "# upstream lapse_store { server s3.example.org:443; keepalive 16; }": (
                f"upstream lapse_store {{ server 127.0.0.1:{store.port}; keepalive 16; }}"
            ),
            "# include lapse-s3-locations.conf;": "include lapse-s3-locations.conf;",
        }
    return _replaced(
        DEPLOY_CONF,
        {
            "server 127.0.0.1:8000;": f"server 127.0.0.1:{lapse_port};",
            "listen 80;": f"listen 127.0.0.1:{port};",
            "/var/lib/lapse/data/blobs/": f"{blobs}/",
            "access_log /var/log/nginx/lapse.access.log lapse;": (
                f"access_log {root}/site.access.log lapse; access_log {root}/nginx.access.log accel;"
            ),
            **s3,
            **(replace or {}),
        },
    )


class Nginx:
    """nginx from PATH with `daemon off`, in a process group of its own."""

    def __init__(
        self,
        root: Path,
        lapse: LapseServer,
        *,
        replace: Mapping[str, str] | None = None,
        store: StoreProxy | None = None,
    ) -> None:
        self.root = root
        self.lapse = lapse
        self.replace = replace
        self.store = store
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.root / "nginx.error.log"

    def start(self) -> None:
        binary = shutil.which("nginx")
        assert binary is not None, "nginx is not on PATH (.ci/run installs nginx-light)"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        site = site_config(
            lapse_port=self.lapse.port,
            port=self.port,
            blobs=self.lapse.blobs,
            root=self.root,
            replace=self.replace,
            store=self.store,
        )
        (self.root / "lapse.conf").write_text(site)
        for name, text in (s3_configs(self.store) if self.store is not None else {}).items():
            (self.root / name).write_text(text)  # included by name: nginx looks beside its main config
        user = "user root;" if os.geteuid() == 0 else ""  # as root, workers would drop to nobody: no blobs for them
        conf = self.root / "nginx.conf"
        conf.write_text(MAIN_CONF.format(root=self.root, user=user))
        command = [binary, "-p", f"{self.root}/", "-e", str(self.error_log), "-c", str(conf), "-g", "daemon off;"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if (code := self.process.poll()) is not None:
                self.process = None
                raise RuntimeError(f"nginx exited with {code}:\n{self.logs()}")
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not listen within {START_TIMEOUT} s:\n{self.logs()}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # nginx's fast shutdown, master and workers
        with suppress(subprocess.TimeoutExpired):
            process.wait(5)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def access_log(self) -> list[str]:
        path = self.root / "nginx.access.log"
        return path.read_text().splitlines() if path.exists() else []

    def answered_by(self, request_path: str, *, count: int = 1, timeout: float = 5.0) -> list[str]:
        """The `$uri` of each logged request for `request_path` — the internal location that sent the bytes, or
        the path itself when Lapse did — once `count` of them are logged (nginx logs after the last byte)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line.split() for line in self.access_log()]
            uris = [fields[1] for fields in lines if fields and fields[0] == request_path]
            if len(uris) >= count or time.monotonic() > deadline:
                return uris
            time.sleep(0.02)

    def worker_pid(self) -> int:
        """The one worker's pid (worker_processes 1): the process that talks to clients."""
        assert self.process is not None, "not running"
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])

    @contextmanager
    def tracing(self, syscalls: str) -> Iterator[Callable[[], list[str]]]:
        """strace the worker's `syscalls` (strace's `-e trace=` list) inside the block; the callable gives the
        traced lines once the block is done."""
        strace = shutil.which("strace")
        assert strace is not None, "strace is not on PATH (.ci/run installs it)"
        worker = self.worker_pid()
        out = self.root / f"strace-{time.monotonic_ns()}.txt"
        tracer = subprocess.Popen([strace, "-qq", "-e", f"trace={syscalls}", "-o", str(out), "-p", str(worker)])
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _traced(worker):  # strace has attached once the worker's TracerPid is set
                assert tracer.poll() is None, f"strace exited with {tracer.returncode}"
                assert time.monotonic() < deadline, "strace did not attach"
                time.sleep(0.01)
            yield lambda: out.read_text().splitlines()
        finally:
            tracer.send_signal(signal.SIGINT)  # detaches, leaving the worker running
            tracer.wait(10)

    def logs(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else "(no error log)"


def _traced(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return any(line.split()[1:] != ["0"] for line in status.splitlines() if line.startswith("TracerPid:"))
