"""Peak memory of `lapse share` on a 1 GiB file, against baselines measured in the same run.

Starts a real `lapse serve` on loopback, then runs, each under `/usr/bin/time` (peak RSS of the process):

- `python -c pass`               the interpreter alone
- `python -c 'import lapse.cli'` the interpreter with everything `lapse` imports at start (server stack included)
- `lapse share` of a 1 MiB file  the client's floor
- `lapse share` of a 1 GiB file  what is measured: flat means (almost) equal to the 1 MiB run
- `curl -T` of the 1 GiB file    a streaming client that is not Python

Run: `.venv/bin/python bench/share_memory.py [--size-mib 1024]`. Prints a table and writes
bench/results/share_memory.json. The big file is sparse (no disk cost to create; the server still stores every
byte, and each upload is deleted again right after).
"""

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "share_memory.json"
LAPSE = [sys.executable, "-m", "lapse"]
TIME = "/usr/bin/time"
MiB = 1024 * 1024


@dataclass
class Run:
    name: str
    peak_rss_mib: float
    seconds: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def measure(name: str, command: list[str], env: dict[str, str]) -> Run:
    """Peak RSS (kB, from GNU time's %M) and wall time of one command, which must succeed."""
    result = subprocess.run(
        [TIME, "-f", "%M %e", *command], env=env, capture_output=True, text=True, check=False, timeout=600
    )
    if result.returncode != 0:
        raise SystemExit(f"{name} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    kilobytes, seconds = result.stderr.strip().splitlines()[-1].split()
    return Run(name, round(int(kilobytes) / 1024, 1), float(seconds))


class Server:
    """`lapse serve` in a process group of its own, stopped by its pid."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LAPSE_")} | {
            "LAPSE_DATA_DIR": str(root / "data"),
            "LAPSE_MAX_UPLOAD_SIZE": "4G",
            "LAPSE_LOG_LEVEL": "warning",
        }
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    def create_key(self) -> str:
        made = subprocess.run(
            [*LAPSE, "keys", "create", "bench", "--json"], env=self.env, cwd=self.root, capture_output=True, check=True
        )
        key: str = json.loads(made.stdout)["key"]
        return key

    def start(self) -> None:
        log = (self.root / "server.log").open("wb")
        self.process = subprocess.Popen(
            [*LAPSE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            cwd=self.root,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("lapse serve did not come up; see " + str(self.root / "server.log"))

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def delete_all_files(server: Server, key: str) -> None:
    """Keep the disk from filling up between the gigabyte uploads."""
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
        for file in client.get("/api/v1/files", params={"limit": 200}).json()["items"]:
            client.delete(f"/api/v1/files/{file['id']}").raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the big file in MiB (default 1024)")
    size = parser.parse_args().size_mib * MiB

    with tempfile.TemporaryDirectory(prefix="lapse-bench-") as tmp:
        root = Path(tmp)
        small, big = root / "small.bin", root / "big.bin"
        small.write_bytes(os.urandom(MiB))
        with big.open("wb") as file:
            file.truncate(size)
        server = Server(root)
        key = server.create_key()
        # The key reaches the children through the environment and a header file, never their argv.
        client_env = server.env | {"LAPSE_SERVER": server.url, "LAPSE_API_KEY": key}
        headers = root / "auth-header"
        headers.write_text(f"Authorization: Bearer {key}\n")
        headers.chmod(0o600)
        server.start()
        try:
            share = [*LAPSE, "share", "--json", "--quiet"]
            runs = [
                measure("python -c pass", [sys.executable, "-c", "pass"], client_env),
                measure("python -c 'import lapse.cli'", [sys.executable, "-c", "import lapse.cli"], client_env),
                measure("lapse share 1 MiB", [*share, str(small)], client_env),
            ]
            delete_all_files(server, key)
            runs.append(measure(f"lapse share {size // MiB} MiB", [*share, str(big)], client_env))
            delete_all_files(server, key)
            put = f"{server.url}/api/v1/files/big.bin"
            curl = ["curl", "-sSf", "-o", "/dev/null", "-H", f"@{headers}", "-T", str(big), put]
            runs.append(measure(f"curl -T {size // MiB} MiB", curl, client_env))
            delete_all_files(server, key)
        finally:
            server.stop()

    by_name = {run.name: run for run in runs}
    share_big, share_small = by_name[f"lapse share {size // MiB} MiB"], by_name["lapse share 1 MiB"]
    curl_run, python_run = by_name[f"curl -T {size // MiB} MiB"], by_name["python -c pass"]
    ratios = {
        "share_big_over_share_1mib": round(share_big.peak_rss_mib / share_small.peak_rss_mib, 3),
        "share_big_minus_share_1mib_mib": round(share_big.peak_rss_mib - share_small.peak_rss_mib, 1),
        "share_big_over_curl": round(share_big.peak_rss_mib / curl_run.peak_rss_mib, 2),
        "share_big_over_python": round(share_big.peak_rss_mib / python_run.peak_rss_mib, 2),
        "file_over_share_big_peak": round(size / MiB / share_big.peak_rss_mib, 1),
        "share_big_throughput_mib_s": round(size / MiB / share_big.seconds, 1) if share_big.seconds else None,
        "curl_throughput_mib_s": round(size / MiB / curl_run.seconds, 1) if curl_run.seconds else None,
    }
    print(f"{'run':<32} {'peak RSS (MiB)':>15} {'seconds':>9}")
    for run in runs:
        print(f"{run.name:<32} {run.peak_rss_mib:>15.1f} {run.seconds:>9.2f}")
    for name, value in ratios.items():
        print(f"{name:<32} {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "file_size_bytes": size,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "runs": [asdict(run) for run in runs],
        "ratios": ratios,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
