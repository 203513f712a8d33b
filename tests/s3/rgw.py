"""A private one-node Ceph RGW (monitor, OSD on memstore, radosgw) for the S3 tests.

It installs nothing: the Debian packages `radosgw ceph-mon ceph-osd` must be there (.ci/run installs them). Every
file lives in one scratch folder, every daemon listens on 127.0.0.1 on a free port, objects live in RAM (memstore),
readiness is polled with a deadline, and the daemons are stopped by their pid files.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "lapse-test"  # the test user's keys: a throw-away store on 127.0.0.1
SECRET_KEY = "lapse-test-secret"
BINARIES = ("monmaptool", "ceph-mon", "ceph-osd", "ceph", "radosgw", "radosgw-admin")
MEMSTORE_BYTES = 512 * 1024 * 1024  # objects live in RAM: the tests keep their files small
START_TIMEOUT = 120.0  # a cold start takes ~12 s on an idle machine; far more on a loaded one


@dataclass(frozen=True, slots=True)
class Rgw:
    endpoint: str  # http://127.0.0.1:<port>
    access_key: str
    secret_key: str
    region: str
    folder: Path

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def plain_client(self) -> Any:
        """A plain (sync) botocore client of this store's user, to look at the bucket behind Lapse's back."""
        import botocore.session  # the `s3` extra's, imported by whoever looks
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


def _conf(folder: Path, fsid: str, mon_port: int, rgw_port: int, memstore_bytes: int, rgw_options: str) -> str:
    return f"""[global]
fsid = {fsid}
mon host = [v1:127.0.0.1:{mon_port}]
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
osd crush update on start = false
osd class update on start = false
mon data avail warn = 2
mon data avail crit = 1
run dir = {folder}/run
pid file = {folder}/run/$name.pid
admin socket = {folder}/run/$name.asok
log file = {folder}/log/$name.log
mon data = {folder}/mon/$cluster-$id
osd data = {folder}/osd/$cluster-$id
keyring = {folder}/keyring

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {folder}/rgw
rgw gc obj min wait = 0
rgw dns name = 127.0.0.1
{rgw_options}"""


class RgwCluster:
    """`memstore_bytes` caps the objects held (in RAM); `rgw_options` are added to radosgw's section of ceph.conf
    (the benchmark's uploads need a bigger store, and deleted objects collected within seconds)."""

    def __init__(
        self, folder: Path, *, memstore_bytes: int = MEMSTORE_BYTES, rgw_options: dict[str, str] | None = None
    ) -> None:
        self.folder = folder
        self.memstore_bytes = memstore_bytes
        self.rgw_options = "".join(f"{name} = {value}\n" for name, value in (rgw_options or {}).items())
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.conf = folder / "ceph.conf"
        self.mon_port = free_port()
        self.rgw_port = free_port()
        self.processes: dict[int, subprocess.Popen[bytes]] = {}  # by pid, to reap them once stopped

    def _ceph(self, *args: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                ["ceph", "-c", str(self.conf), "--connect-timeout", "10", *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            # A young monitor refuses commands now and then ("EPERM: problem getting command descriptions from
            # mon"), a few starts in ten under load: asked again.
            if "problem getting command descriptions" not in done.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # a retry interval, not synchronisation
        done.check_returncode()
        return done.stdout

    def _run(self, *argv: str) -> None:
        subprocess.run([*argv, "-c", str(self.conf)], capture_output=True, text=True, timeout=60, check=True)

    def _daemon(self, name: str, *argv: str) -> None:
        """Start a daemon in the foreground of its own session; its pid goes to run/<name>.pid (ours, written
        at once, so a stop finds it even if the daemon dies before writing its own)."""
        log = (self.folder / "log" / f"{name}.out").open("ab")
        process = subprocess.Popen(
            [*argv, "-c", str(self.conf), "-f"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.processes[process.pid] = process
        (self.folder / "run" / f"{name}.started.pid").write_text(str(process.pid))

    def start(self) -> Rgw:
        missing = missing_binaries()
        if missing:
            raise RuntimeError(
                f"Ceph RGW is not installed (missing {', '.join(missing)}): "
                "apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd"
            )
        for sub in ("run", "log", "mon", "osd", "rgw"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        self.conf.write_text(
            _conf(self.folder, fsid, self.mon_port, self.rgw_port, self.memstore_bytes, self.rgw_options)
        )
        deadline = time.monotonic() + START_TIMEOUT
        try:
            monmap = self.folder / "monmap"
            # msgr v1 only (ms bind msgr2 = false): a bare address would be read as v2, and no daemon could join
            mon_addr = f"[v1:127.0.0.1:{self.mon_port}]"
            self._run("monmaptool", "--create", "--addv", "a", mon_addr, "--fsid", fsid, str(monmap))
            self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(monmap))
            self._daemon("mon.a", "ceph-mon", "-i", "a")
            _poll(deadline, "the monitor", lambda: "quorum" in self._ceph("mon", "stat"))
            osd_id = self._ceph("osd", "create").strip()
            (self.folder / "osd" / f"ceph-{osd_id}").mkdir(parents=True, exist_ok=True)
            self._run("ceph-osd", "-i", osd_id, "--mkfs")
            self._ceph("osd", "crush", "add", f"osd.{osd_id}", "1", "root=default")
            self._daemon(f"osd.{osd_id}", "ceph-osd", "-i", osd_id)
            _poll(deadline, "the OSD", lambda: " 1 up" in self._ceph("osd", "stat"))
            self._daemon("client.rgw", "radosgw", "-n", "client.rgw")
            _poll(deadline, "radosgw", lambda: _answers(self.rgw_port))
            self._run(
                "radosgw-admin",
                "user",
                "create",
                "--uid",
                "lapse",
                "--display-name",
                "Lapse tests",
                "--access-key",
                self.access_key,
                "--secret-key",
                self.secret_key,
            )
        except BaseException:
            self.stop()
            raise
        return Rgw(
            endpoint=f"http://127.0.0.1:{self.rgw_port}",
            access_key=self.access_key,
            secret_key=self.secret_key,
            region="us-east-1",
            folder=self.folder,
        )

    def stop_rgw(self) -> None:
        """Stop radosgw alone (the store goes down; monitor and OSD stay)."""
        self._stop(self.folder / "run" / "client.rgw.started.pid")

    def stop(self) -> None:
        """Stop every daemon by its pid file, radosgw first."""
        run = self.folder / "run"
        if not run.is_dir():
            return
        self.stop_rgw()
        for pid_file in sorted(run.glob("osd.*.started.pid")):
            self._stop(pid_file)
        self._stop(run / "mon.a.started.pid")

    def _stop(self, pid_file: Path, timeout: float = 20.0) -> None:
        """SIGTERM the daemon the pid file names, SIGKILL if it is still there after `timeout`."""
        try:
            pid = int(pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        process = self.processes.pop(pid, None)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if process is not None:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        pid_file.unlink(missing_ok=True)


def _poll(deadline: float, what: str, ready: Callable[[], bool]) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except (subprocess.SubprocessError, OSError) as exc:
            last = exc
        time.sleep(0.1)  # a poll interval, not synchronisation: the loop waits on the condition
    raise TimeoutError(f"{what} was not ready within {START_TIMEOUT:.0f} s (last error: {last})")


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
