"""A real `lapse serve` in a process group of its own, the `lapse` CLI with the same environment, and fresh
databases for them.

Everything here is sync on purpose: fixtures call it directly, async tests through `anyio.to_thread`.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from lapse.db.session import create_engine
from tests.databases import empty_postgres, migrated_postgres, migrated_sqlite
from tests.helpers import free_port

# The console script of the interpreter running the tests: the same install the tests import.
LAPSE = str(Path(sys.executable).with_name("lapse"))
SECRET_KEY = "server-tests-secret-" + "s" * 40
START_TIMEOUT = 30.0
STOP_GRACE = 5.0
# What uvicorn logs (at LAPSE_LOG_LEVEL=info, the default) when one worker is ready.
WORKER_READY = "Application startup complete."


class LapseServer:
    """One `lapse serve --workers N` and its environment. `start()` may be called again after `stop()` or
    `kill()`: same data folder and database, a new port, new log files."""

    def __init__(
        self,
        root: Path,
        database_url: str,
        *,
        workers: int = 2,
        env: Mapping[str, str] | None = None,
        name: str = "lapse",
        secret_key: str | None = SECRET_KEY,
    ) -> None:
        self.root = root
        self.database_url = database_url
        self.workers = workers
        self.extra_env = dict(env or {})
        self.name = name
        self.secret_key = secret_key
        self.data_dir = root / "data"
        self.blobs = self.data_dir / "blobs"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.stdout_path = root / f"{name}.stdout"
        self.stderr_path = root / f"{name}.stderr"
        self._starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        # No LAPSE_* from the caller's shell leaks in; the cwd is `root`, so no stray .env is read either.
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAPSE_")}
        env |= {"LAPSE_DATA_DIR": str(self.data_dir), "LAPSE_DATABASE_URL": self.database_url}
        if self.secret_key is not None:
            env["LAPSE_SECRET_KEY"] = self.secret_key
        return env | self.extra_env

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `lapse ARGS` against the same data folder and database; never raises on a non-zero exit."""
        return subprocess.run(
            [LAPSE, *args],
            env=self.environment(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def create_key(self, name: str, *, admin: bool = False) -> str:
        result = self.cli("keys", "create", name, "--json", *(["--admin"] if admin else []))
        assert result.returncode == 0, f"lapse keys create failed ({result.returncode}):\n{result.stderr}"
        created = json.loads(result.stdout)
        assert created["admin"] is admin
        key: str = created["key"]
        return key

    def process_group(self) -> int:
        """The server's process group (it leads its own session): the parent and its workers."""
        assert self.process is not None, "not running"
        return self.process.pid

    def launch(self) -> None:
        """Start the process and return at once; `wait_healthy()` waits for it to answer."""
        assert self.process is None, "already running"
        self._starts += 1
        suffix = "" if self._starts == 1 else f".{self._starts}"
        self.stdout_path = self.root / f"{self.name}{suffix}.stdout"
        self.stderr_path = self.root / f"{self.name}{suffix}.stderr"
        self.port = free_port()
        command = [LAPSE, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        self.root.mkdir(parents=True, exist_ok=True)
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                command,
                env=self.environment(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its own process group: workers are stopped (or killed) with it
            )

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until /healthz answers 200 and every worker has finished its startup (so that a test asking
        for two workers gets two). A port somebody took since `free_port()` costs a relaunch, not a failure."""
        deadline = time.monotonic() + timeout
        relaunches = 3
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                process = self.process
                assert process is not None, "not launched"
                if (code := process.poll()) is not None:
                    self.process = None
                    if "address already in use" in self._stderr().lower() and relaunches:
                        relaunches -= 1
                        self.launch()
                        continue
                    raise RuntimeError(f"lapse serve exited with {code} before answering\n{self.logs()}")
                with suppress(httpx.TransportError):
                    healthy = client.get(f"{self.url}/healthz").status_code == 200
                    if healthy and self._stderr().count(WORKER_READY) >= self.workers:
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"lapse serve was not up within {timeout} s\n{self.logs()}")
                time.sleep(0.05)

    def _stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.launch()
        self.wait_healthy(timeout)

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL to whatever is left a few seconds later. Safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_GRACE)
        _signal_group(process.pid, signal.SIGKILL)  # workers that outlived their parent, or a stuck parent
        process.wait()

    def kill(self) -> int:
        """SIGKILL the whole group at once, as a power cut would; answers the parent's exit status."""
        process, self.process = self.process, None
        assert process is not None, "not running"
        _signal_group(process.pid, signal.SIGKILL)
        return process.wait()

    def logs(self, limit: int = 6000) -> str:
        parts = []
        for path in (self.stderr_path, self.stdout_path):
            content = path.read_text(errors="replace") if path.exists() else "(none)"
            parts.append(f"--- {path} (last {limit} characters) ---\n{content[-limit:]}")
        return "\n".join(parts)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@contextmanager
def fresh_database(kind: str, root: Path, *, migrated: bool = False) -> Iterator[str]:
    """A database of the given kind, empty (`lapse` migrates it) unless `migrated`: then a copy of the migrated
    template, which saves the server its migration. A new SQLite file under root, or a new PostgreSQL database,
    dropped afterwards."""
    if kind == "sqlite":
        root.mkdir(parents=True, exist_ok=True)
        path = root / "lapse.db"
        yield migrated_sqlite(path) if migrated else f"sqlite:///{path}"
        return
    assert kind == "postgresql", kind
    with migrated_postgres() if migrated else empty_postgres("server") as url:
        yield url


async def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Read rows straight from the database, behind the server's back."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in (await connection.execute(text(sql))).all()]
    finally:
        await engine.dispose()
