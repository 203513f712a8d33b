"""Processes for the benchmark: servers started on loopback, stopped by pid, and /proc readings of them."""

import os
import signal
import socket
import subprocess
import threading
import time
from contextlib import suppress
from pathlib import Path

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (uvicorn's workers, nginx's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of each process (not of reaped children: the workers live as long as the run)."""
    total = 0
    for pid in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total / MiB


class PeakRss:
    """Samples the summed RSS of some processes every few milliseconds while a block runs."""

    def __init__(self, pids: list[int], interval: float = 0.01) -> None:
        self.pids = pids
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pids))
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRss":
        self.peak = rss_mib(self.pids)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pids))


class Server:
    """One server process in a process group of its own, on 127.0.0.1:`port`, stopped by its pid."""

    def __init__(
        self, name: str, command: list[str], *, port: int, env: dict[str, str], cwd: Path, ready_path: str = "/"
    ) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.env = env
        self.cwd = cwd
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self.log = cwd / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        assert self.process is not None
        return tree(self.process.pid)

    def start(self, workers: int = 1, timeout: float = 30) -> "Server":
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                if self.process.poll() is not None:
                    raise SystemExit(f"{self.name} exited early:\n{self.log.read_text()[-3000:]}")
                with suppress(httpx.TransportError):
                    if client.get(self.url + self.ready_path).status_code < 500 and len(self.pids) >= workers:
                        time.sleep(0.3 if workers > 1 else 0)  # let the last worker finish its startup
                        return self
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"{self.name} did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(8)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
