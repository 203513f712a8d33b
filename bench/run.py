"""Lapse against its baselines, in one run on this machine: `make bench` (or `.venv/bin/python bench/run.py`).

Every server is started here, on 127.0.0.1, and stopped by pid at the end:

- Lapse (`lapse serve`, SQLite, 1 worker; then PostgreSQL, 2 workers)
- FastAPI hello world under the same server and worker count (bench/hello.py): the floor of any FastAPI route
- nginx (1 worker, sendfile on) serving the same files statically, and taking WebDAV PUTs as the upload baseline
- Lapse with LAPSE_DELIVERY=accel behind nginx configured from deploy/nginx/lapse.conf (bench/accel.py): Lapse
  counts, nginx sends the bytes; `--only accel` measures just that and its baselines
- Lapse on S3 (`run_s3`): a private one-node Ceph RGW (tests/s3/rgw.py), Lapse with LAPSE_DELIVERY=redirect and
  inline, against bench/s3client.py talking to the store directly; `--only s3` measures just that

Each figure is the median of `--runs` runs, with the min–max spread; a ratio's two sides are measured in turn,
round after round (`alternate`), so that both sample the same stretches of this noisy host's time. Prints a table
of ratios against the goals in docs/performance.md and writes bench/results/bench.json.
"""

import argparse
import asyncio
import functools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repository: its private RGW (tests/s3/rgw.py)
import accel
from procs import MiB, PeakRss, Server, cpu_seconds, free_port, rss_mib

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "bench.json"
BIN = Path(sys.executable).parent
LAPSE = str(BIN / "lapse")
GiB = 1024 * MiB
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET = "bench-secret-" + "b" * 40
NGINX_CONF = """
user root;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx.error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {root}/nginx-body;
    proxy_temp_path {root}/nginx-proxy;
    fastcgi_temp_path {root}/nginx-fastcgi;
    uwsgi_temp_path {root}/nginx-uwsgi;
    scgi_temp_path {root}/nginx-scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {root}/static; }}
        location /dav/ {{
            root {root};
            dav_methods PUT;
            client_max_body_size 2g;
        }}
    }}
}}
"""


# ---------------------------------------------------------------- figures


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def size_label(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def fmt(stats: dict[str, float], unit: str = "", digits: int = 0) -> str:
    m, lo, hi = stats["median"], stats["min"], stats["max"]
    return f"{m:,.{digits}f}{unit} ({lo:,.{digits}f}–{hi:,.{digits}f})"


_WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, *, seconds: int, connections: int, script: Path | None = None) -> dict[str, float]:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        *(["-s", str(script)] if script else []),
    ]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {p: float(v) * _UNITS[u] for p, v, u in _WRK_LATENCY.findall(out)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if bad or (errors and any(int(n) for n in errors.groups())):
        raise SystemExit(f"wrk saw failures against {url}:\n{out}")
    return {"rps": rps, "p50_ms": latency["50"], "p99_ms": latency["99"]}


Measure = Callable[[], dict[str, float]]


def repeat(runs: int, once: Measure) -> dict[str, dict[str, float]]:
    return alternate(runs, {"once": once})["once"]


def alternate(runs: int, measures: dict[str, Measure]) -> dict[str, dict[str, dict[str, float]]]:
    """Every measure once per round, round after round, each summarised over its rounds. A baseline and what is
    compared with it then sample the same stretches of time: this host's speed drifts by tens of per cent within
    minutes, and measured one block after the other a slow spell lands on one side of a ratio only."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in measures}
    for _ in range(runs):
        for name, once in measures.items():
            samples[name].append(once())
    return {name: {key: summary([s[key] for s in got]) for key in got[0]} for name, got in samples.items()}


def load(url: str, args: argparse.Namespace, script: Path | None = None) -> dict[str, dict[str, float]]:
    return repeat(args.runs, wrk_once(url, args, script))


def wrk_once(url: str, args: argparse.Namespace, script: Path | None = None) -> Measure:
    return lambda: wrk(url, seconds=args.seconds, connections=args.connections, script=script)


# ---------------------------------------------------------------- Lapse set-up


class Lapse:
    def __init__(
        self, root: Path, database_url: str, *, workers: int, server: str, env: dict[str, str] | None = None
    ) -> None:
        self.root = root
        self.blobs = root / "data" / "blobs"
        root.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LAPSE_")} | {
            "LAPSE_DATA_DIR": str(root / "data"),
            "LAPSE_DATABASE_URL": database_url,
            "LAPSE_SECRET_KEY": SECRET,
            "LAPSE_LOG_LEVEL": "warning",
            "LAPSE_MAX_UPLOAD_SIZE": str(2 * GiB),
            **(env or {}),
        }
        created = subprocess.run(
            [LAPSE, "keys", "create", "bench", "--admin", "--json"],
            env=self.env,
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        self.key = json.loads(created.stdout)["key"]
        port = free_port()
        command = [LAPSE, "serve", "--port", str(port), "--workers", str(workers)]
        if server == "granian":  # not a `lapse serve` option (docs/performance.md): the same app factory, by hand
            command = [str(BIN / "granian"), "--interface", "asgi", "--factory", "--host", "127.0.0.1"]
            command += ["--port", str(port), "--workers", str(workers), "lapse.app:app_from_env"]
        self.server = Server(f"lapse-{workers}w", command, port=port, env=self.env, cwd=root, ready_path="/healthz")
        self.workers = workers
        self.http = httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=600, trust_env=False
        )

    def sibling(self, name: str, **env: str) -> Server:
        """Another `lapse serve` (1 worker) on the same database and blobs, with some settings changed."""
        port = free_port()
        command = [LAPSE, "serve", "--port", str(port), "--workers", "1"]
        return Server(name, command, port=port, env=self.env | env, cwd=self.root, ready_path="/healthz")

    def upload(self, path: Path, **link: int) -> dict[str, Any]:
        with path.open("rb") as body:
            answer = self.http.put(f"/api/v1/files/{path.name}", content=body, params=link)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def link(self, file_id: str, **terms: int | None) -> str:
        answer = self.http.post(f"/api/v1/files/{file_id}/links", json={"expires_in": 86400, **terms})
        answer.raise_for_status()
        url: str = answer.json()["url"]
        return url

    def close(self) -> None:
        self.http.close()
        self.server.stop()


def exactly_one(url: str, requests: int = 50) -> dict[str, int]:
    """`requests` concurrent fresh GETs (no cookies, no grant) of a one-time link: how many got 200."""

    async def one() -> int:
        async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
            return (await client.get(url)).status_code

    async def all_at_once() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(requests)))

    codes = asyncio.run(all_at_once())
    return {str(code): codes.count(code) for code in sorted(set(codes))}


def exact_k_under_load(lapse: Lapse, file_id: str, busy_url: str, args: argparse.Namespace) -> dict[str, Any]:
    return exact_k_under_load_at(lapse, file_id, busy_url, lambda url: url, args)


def exact_k_under_load_at(
    lapse: Lapse, file_id: str, busy_url: str, where: Callable[[str], str], args: argparse.Namespace
) -> dict[str, Any]:
    """The redemption load keeps running (wrk on another link) while 50 requests race for one download
    (at `where(url)`: through nginx for the accel scenario)."""
    one_time = where(lapse.link(file_id, max_downloads=1))
    with ThreadPoolExecutor(1) as pool:
        background = pool.submit(wrk, busy_url, seconds=args.seconds, connections=args.connections)
        time.sleep(1)
        codes = exactly_one(one_time)
        background.result()
    return {"codes": codes, "ok": codes.get("200", 0) == 1 and set(codes) <= {"200", "410"}}


# ---------------------------------------------------------------- streams


def fetch(url: str, headers: dict[str, str]) -> int:
    command = ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    return int(subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout)


def streams(
    pids: list[int], url: str | Callable[[], str], *, count: int, headers: dict[str, str], expect: int
) -> dict[str, float]:
    """`count` curls at once; aggregate MiB/s, server CPU seconds per GiB sent, RSS before and at peak."""
    urls = [url() if callable(url) else url for _ in range(count)]
    cpu = cpu_seconds(pids)
    before = rss_mib(pids)
    started = time.perf_counter()
    with PeakRss(pids) as peak, ThreadPoolExecutor(count) as pool:
        sizes = list(pool.map(lambda u: fetch(u, headers), urls))
    wall = time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu
    total = sum(sizes)
    assert all(size == expect for size in sizes), (sizes, expect)
    return {
        "mib_s": total / MiB / wall,
        "cpu_s_per_gib": cpu / (total / GiB),
        "rss_before_mib": before,
        "rss_peak_mib": peak.peak,
        "rss_growth_mib": peak.peak - before,
    }


def upload_once(pids: list[int], command: list[str], size: int, cleanup: Callable[[str], None]) -> dict[str, float]:
    before = rss_mib(pids)
    started = time.perf_counter()
    with PeakRss(pids) as peak:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - started
    cleanup(out)
    return {"mib_s": size / MiB / wall, "rss_before_mib": before, "rss_peak_mib": peak.peak}


# ---------------------------------------------------------------- the run


def make_files(root: Path, big_mib: int, upload_mib: int) -> dict[str, Path]:
    static = root / "static"
    static.mkdir()
    (root / "dav").mkdir()
    small = static / "small.bin"
    small.write_bytes(os.urandom(1024))
    big = static / "big.bin"
    with big.open("wb") as out:
        for _ in range(big_mib):
            out.write(os.urandom(MiB))
    upload = root / "upload.bin"
    with upload.open("wb") as out:  # sparse: costs no disk to make, the server still writes every byte
        out.truncate(upload_mib * MiB)
    return {"small": small, "big": big, "upload": upload}


def ensure_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk", "curl") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing {missing}: `make bench` installs them (apt-get install -y nginx-light wrk curl)")


def python_server(name: str, app: str, *, workers: int, root: Path, server: str, app_dir: Path) -> Server:
    port = free_port()
    if server == "granian":
        command = [str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--workers", str(workers), "--working-dir", str(app_dir), "--log-level", "warning", app]
    else:
        command = [sys.executable, "-m", "uvicorn", app, "--app-dir", str(app_dir), "--port", str(port)]
        command += ["--workers", str(workers), "--log-level", "warning", "--no-server-header"]
    return Server(name, command, port=port, env=dict(os.environ), cwd=root)


def static_nginx(root: Path, stack: ExitStack) -> Server:
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, port=port))
    nginx = Server(
        "nginx",
        [shutil.which("nginx") or "nginx", "-c", str(conf), "-g", "daemon off;"],
        port=port,
        env={},
        cwd=root,
    )
    stack.callback(nginx.stop)
    nginx.start(workers=2)  # master + 1 worker
    return nginx


Shape = tuple[list[int], str, dict[str, str], int]  # server pids, URL, request headers, bytes expected


def measure_streams(args: argparse.Namespace, shapes: dict[str, Shape]) -> dict[str, Any]:
    """`stream{count}_{label}` for 1 and 4 streams of every shape, the shapes taken in turn (`alternate`)."""
    results: dict[str, Any] = {}
    for count in (1, 4):
        at_once = functools.partial(streams, count=count)
        measures: dict[str, Measure] = {
            label: functools.partial(at_once, pids, url, headers=headers, expect=expect)
            for label, (pids, url, headers, expect) in shapes.items()
        }
        measured = alternate(args.stream_runs, measures)
        results |= {f"stream{count}_{label}": figures for label, figures in measured.items()}
    return results


def run_only_accel(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The accel scenario and the baselines its ratios need, nothing else."""
    files = make_files(root, args.big_mib, upload_mib=1)
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        nginx = static_nginx(root, stack)
        hello = python_server("hello", "hello:app", workers=1, root=root, server="uvicorn", app_dir=HERE)
        stack.callback(hello.stop)
        hello.start()
        results["hello"] = load(hello.url + "/", args)
        hello.stop()
        results["nginx_1k"] = load(f"{nginx.url}/small.bin", args)
        results |= run_accel(args, root, files, nginx)
    return results


def run_accel(args: argparse.Namespace, root: Path, files: dict[str, Path], nginx: Server) -> dict[str, Any]:
    """Lapse (1 worker, SQLite) with LAPSE_DELIVERY=accel behind nginx (1 worker) configured from the repo's
    deploy/nginx/lapse.conf: every request goes through both, and server CPU is both processes' CPU."""
    print("accel (nginx sends the bytes) …", file=sys.stderr)
    big_size = args.big_mib * MiB
    half = big_size // 2
    results: dict[str, Any] = {}
    home = root / "accel"
    lapse = Lapse(home, f"sqlite:///{home / 'lapse.db'}", workers=1, server="uvicorn", env={"LAPSE_DELIVERY": "accel"})
    try:
        lapse.server.start()
        front = accel.front(root / "accel-nginx", lapse_port=lapse.server.port, blobs=lapse.blobs)
        try:
            front.start(workers=2)

            def via_nginx(url: str) -> str:
                return front.url + httpx.URL(url).path

            small = lapse.upload(files["small"], max_downloads=2**31 - 1)
            big = lapse.upload(files["big"])
            unlimited_url = via_nginx(lapse.link(small["id"], max_downloads=None))
            results["accel_redeem_limited"] = load(via_nginx(small["link"]["url"]), args)
            results["accel_redeem_unlimited"] = load(unlimited_url, args)
            results["exact_k_accel"] = exact_k_under_load_at(lapse, small["id"], unlimited_url, via_nginx, args)

            big_url = via_nginx(lapse.link(big["id"], max_downloads=None))
            with httpx.Client(trust_env=False, timeout=60) as client:
                first = client.get(big_url, headers={"Range": "bytes=0-0"})
                first.raise_for_status()
                grant = first.headers["Lapse-Grant"]
            pids = front.pids + lapse.server.pids
            ranged = {"Range": f"bytes={half}-"}
            static = f"{nginx.url}/big.bin"
            shapes: dict[str, Shape] = {  # nginx static again, beside: the accel ratios' baseline
                "accel_nginx": (nginx.pids, static, {}, big_size),
                "accel": (pids, big_url, {}, big_size),
                "accel_nginx_ranged": (nginx.pids, static, ranged, big_size - half),
                "accel_ranged": (pids, big_url, {**ranged, "Lapse-Grant": grant}, big_size - half),
            }
            results |= measure_streams(args, shapes)
        finally:
            front.stop()
    finally:
        lapse.close()
    return results


S3_BUCKET = "lapse-bench"
S3_PREFIX = "blobs/"
S3_PART = 8 * MiB  # LAPSE_S3_PART_SIZE's default, and the direct upload's part size
S3_CLIENT = [sys.executable, str(HERE / "s3client.py")]


def s3_get(env: dict[str, str], url: str, pids: list[int], store: list[int], expect: int) -> dict[str, float]:
    """One GET by bench/s3client.py (aiohttp, 256 KiB reads, following a 302): MiB/s and the client's CPU per GiB
    as it timed them itself, and over the same process's life the CPU per GiB of the Lapse server `pids` (none for
    a direct GET) and of the store (radosgw and the OSD)."""
    lapse_cpu, store_cpu = cpu_seconds(pids), cpu_seconds(store)
    out = subprocess.run([*S3_CLIENT, "get", url], capture_output=True, text=True, check=True, env=env).stdout
    lapse_cpu, store_cpu = cpu_seconds(pids) - lapse_cpu, cpu_seconds(store) - store_cpu
    got = json.loads(out)
    assert got["bytes"] == expect, (got, expect)
    gib = got["bytes"] / GiB
    return {
        "mib_s": got["bytes"] / MiB / got["seconds"],
        "client_cpu_s_per_gib": got["cpu_seconds"] / gib,
        "lapse_cpu_s_per_gib": lapse_cpu / gib,
        "store_cpu_s_per_gib": store_cpu / gib,
    }


def run_s3(args: argparse.Namespace, root: Path, files: dict[str, Path]) -> dict[str, Any]:
    """Lapse on S3: a private one-node Ceph RGW (tests/s3/rgw.py, objects in RAM), Lapse (1 worker, SQLite) with
    LAPSE_DELIVERY=redirect and a second one on the same data with inline, a hello world beside them; the
    baselines are bench/s3client.py talking to the store directly."""
    from tests.s3.rgw import RgwCluster, missing_binaries

    if missing := missing_binaries():
        raise SystemExit(f"missing {missing}: `make bench-tools` installs Ceph RGW (or pass --skip-s3)")
    print("S3 (Ceph RGW) …", file=sys.stderr)
    big_size, up_size = args.big_mib * MiB, args.upload_mib * MiB
    results: dict[str, Any] = {}
    # memstore keeps every object in RAM, up to this cap; deleted ones are collected every few seconds, but room is
    # left for every upload of the run should the collector lag
    room = big_size + (2 * args.runs + 2) * up_size + GiB
    cluster = RgwCluster(root / "rgw", memstore_bytes=room, rgw_options={"rgw gc processor period": "5"})
    with ExitStack() as stack:
        store = cluster.start()
        stack.callback(cluster.stop)
        store_pids = list(cluster.processes)
        s3 = store.plain_client()
        s3.create_bucket(Bucket=S3_BUCKET)
        aws = {
            "AWS_ACCESS_KEY_ID": store.access_key,
            "AWS_SECRET_ACCESS_KEY": store.secret_key,
            "AWS_CONFIG_FILE": str(root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-config"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        client_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | aws
        client_env |= {"S3_ENDPOINT": store.endpoint, "S3_BUCKET": S3_BUCKET, "S3_PART_SIZE": str(S3_PART)}
        lapse_env = aws | {
            "LAPSE_STORAGE_URL": f"s3://{S3_BUCKET}/{S3_PREFIX}",
            "LAPSE_S3_ENDPOINT": store.endpoint,
            "LAPSE_S3_REGION": store.region,
            "LAPSE_S3_PATH_STYLE": "true",
            "LAPSE_S3_PART_SIZE": str(S3_PART),
        }
        home = root / "s3"
        lapse = Lapse(
            home,
            f"sqlite:///{home / 'lapse.db'}",
            workers=1,
            server="uvicorn",
            env=lapse_env | {"LAPSE_DELIVERY": "redirect"},
        )
        stack.callback(lapse.close)
        lapse.server.start()
        inline = lapse.sibling("lapse-s3-inline", LAPSE_DELIVERY="inline")
        stack.callback(inline.stop)
        inline.start()
        hello = python_server("hello-s3", "hello:app", workers=1, root=root, server="uvicorn", app_dir=HERE)
        stack.callback(hello.stop)
        hello.start()

        def stored() -> dict[str, int]:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET, Prefix=S3_PREFIX)
            return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}

        # and a Lapse on local disk, as the redemption rows above run it: what a 302 costs against a local file
        local = Lapse(root / "s3-local", f"sqlite:///{root / 's3-local' / 'lapse.db'}", workers=1, server="uvicorn")
        stack.callback(local.close)
        local.server.start()
        local_small = local.upload(files["small"])

        small = lapse.upload(files["small"], max_downloads=2**31 - 1)
        big = lapse.upload(files["big"])
        kept = stored()
        big_key = next(key for key, size in kept.items() if size == big_size)

        print("S3: redirect redemption …", file=sys.stderr)
        results |= alternate(
            args.runs,
            {
                "s3_hello": wrk_once(hello.url + "/", args),
                "s3_redeem_redirect_limited": wrk_once(small["link"]["url"], args),
                "s3_redeem_redirect": wrk_once(lapse.link(small["id"], max_downloads=None), args),
                "s3_redeem_local": wrk_once(local.link(local_small["id"], max_downloads=None), args),
            },
        )
        hello.stop()
        local.close()

        print("S3: downloads …", file=sys.stderr)
        big_url = lapse.link(big["id"], max_downloads=None)
        inline_url = inline.url + httpx.URL(big_url).path
        direct = s3.generate_presigned_url("get_object", Params={"Bucket": S3_BUCKET, "Key": big_key}, ExpiresIn=86400)
        results |= alternate(
            args.stream_runs,
            {
                "s3_get_direct": lambda: s3_get(client_env, direct, [], store_pids, big_size),
                "s3_get_redirect": lambda: s3_get(client_env, big_url, lapse.server.pids, store_pids, big_size),
                "s3_get_inline": lambda: s3_get(client_env, inline_url, inline.pids, store_pids, big_size),
            },
        )
        inline.stop()

        print("S3: uploads …", file=sys.stderr)
        up = files["upload"]
        with up.open("rb") as warm:  # read once before any is timed (see the local upload)
            while warm.read(16 * MiB):
                pass

        def forget_uploads() -> None:  # objects live in RAM: drop every upload, Lapse's (by key) and the direct one
            for key in stored().keys() - kept.keys():
                s3.delete_object(Bucket=S3_BUCKET, Key=key)

        lapse_put = ["curl", "-sS", "--fail", "-T", str(up), "-H", f"Authorization: Bearer {lapse.key}"]
        lapse_put.append(f"{lapse.server.url}/api/v1/files/upload.bin")

        def through_lapse() -> dict[str, float]:
            pids = lapse.server.pids
            before, cpu, store_cpu = rss_mib(pids), cpu_seconds(pids), cpu_seconds(store_pids)
            started = time.perf_counter()
            with PeakRss(pids) as peak:
                out = subprocess.run(lapse_put, capture_output=True, text=True, check=True).stdout
            wall, cpu = time.perf_counter() - started, cpu_seconds(pids) - cpu
            store_cpu = cpu_seconds(store_pids) - store_cpu
            lapse.http.delete(f"/api/v1/files/{json.loads(out)['id']}").raise_for_status()
            forget_uploads()
            return {
                "mib_s": up_size / MiB / wall,
                "lapse_cpu_s_per_gib": cpu / (up_size / GiB),
                "store_cpu_s_per_gib": store_cpu / (up_size / GiB),
                "rss_before_mib": before,
                "rss_peak_mib": peak.peak,
                "rss_growth_mib": peak.peak - before,
            }

        def direct_put() -> dict[str, float]:
            command = [*S3_CLIENT, "put", str(up), f"{S3_PREFIX}direct-upload"]
            store_cpu = cpu_seconds(store_pids)
            got = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, env=client_env).stdout)
            store_cpu = cpu_seconds(store_pids) - store_cpu
            forget_uploads()
            assert got["bytes"] == up_size, got
            return {
                "mib_s": got["bytes"] / MiB / got["seconds"],
                "client_cpu_s_per_gib": got["cpu_seconds"] / (up_size / GiB),
                "store_cpu_s_per_gib": store_cpu / (up_size / GiB),
            }

        # The first upload into a fresh server, untimed but its memory kept: the figure the RSS goal is held to is
        # the largest growth over it and the timed ones.
        results["s3_upload_first"] = through_lapse()
        results |= alternate(args.runs, {"s3_upload_lapse": through_lapse, "s3_upload_direct": direct_put})
    return results


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    files = make_files(root, args.big_mib, args.upload_mib)
    big_size = args.big_mib * MiB
    half = big_size // 2
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        nginx = static_nginx(root, stack)
        hello = python_server("hello", "hello:app", workers=1, root=root, server="uvicorn", app_dir=HERE)
        stack.callback(hello.stop)
        hello.start()
        lapse = Lapse(root / "sqlite", f"sqlite:///{root / 'sqlite' / 'lapse.db'}", workers=1, server="uvicorn")
        stack.callback(lapse.close)
        lapse.server.start()

        small = lapse.upload(files["small"], max_downloads=2**31 - 1)
        big = lapse.upload(files["big"])
        limited_url = small["link"]["url"]
        unlimited_url = lapse.link(small["id"], max_downloads=None)

        print("redemption and link creation …", file=sys.stderr)
        script = root / "create.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.body = \'{"expires_in": 3600, "max_downloads": 5}\'\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {lapse.key}"\n'
        )
        results |= alternate(
            args.runs,
            {
                "hello": wrk_once(hello.url + "/", args),
                "nginx_1k": wrk_once(f"{nginx.url}/small.bin", args),
                "redeem_limited": wrk_once(limited_url, args),
                "redeem_unlimited": wrk_once(unlimited_url, args),
            },
        )
        # Apart, after: each round adds ~15,000 links, and redemptions are measured on the database as it was.
        results |= alternate(
            args.runs,
            {
                "hello_beside_create": wrk_once(hello.url + "/", args),
                "create_link": wrk_once(f"{lapse.server.url}/api/v1/files/{small['id']}/links", args, script),
            },
        )
        results["exact_k_sqlite"] = exact_k_under_load(lapse, small["id"], unlimited_url, args)

        print("streams …", file=sys.stderr)
        big_url = lapse.link(big["id"], max_downloads=None)
        grant_answer = lapse.http.get(big_url, headers={"Range": "bytes=0-0"})
        grant = grant_answer.headers["Lapse-Grant"]
        ranged = {"Range": f"bytes={half}-"}

        static = f"{nginx.url}/big.bin"
        shapes: dict[str, Shape] = {
            "nginx": (nginx.pids, static, {}, big_size),
            "lapse": (lapse.server.pids, big_url, {}, big_size),
            "nginx_ranged": (nginx.pids, static, ranged, big_size - half),
            "lapse_ranged": (lapse.server.pids, big_url, {**ranged, "Lapse-Grant": grant}, big_size - half),
        }
        results |= measure_streams(args, shapes)

        print("upload …", file=sys.stderr)
        up = files["upload"]
        up_size = args.upload_mib * MiB
        # Read once before any is timed: curl's first read of the fresh (sparse) file cost it 1.6-3.2 s of CPU,
        # against ~0.5 s later, and that landed on whichever upload ran first (Lapse's: ~300 MiB/s, every run).
        with up.open("rb") as warm:
            while warm.read(16 * MiB):
                pass
        curl = ["curl", "-sS", "--fail", "-T", str(up)]

        def delete_lapse(out: str) -> None:
            lapse.http.delete(f"/api/v1/files/{json.loads(out)['id']}").raise_for_status()

        copy = root / "dav" / "copy.bin"
        lapse_put = [*curl, "-H", f"Authorization: Bearer {lapse.key}", f"{lapse.server.url}/api/v1/files/upload.bin"]
        # And one upload before any is timed: the first GiB written into memory this VM had not touched since it
        # booted cost ~2.5 s of kernel time per GiB (the host backing the pages; filling /dev/shm with 11 GB once
        # took 30 s of sys time, and afterwards the same upload was fast). Whichever upload ran first paid it —
        # Lapse's, at 380-470 MiB/s with 3.2 s of CPU against ~1.3, one sample every run.
        upload_once(lapse.server.pids, lapse_put, up_size, delete_lapse)
        results |= alternate(
            args.runs,
            {
                "upload_lapse": lambda: upload_once(lapse.server.pids, lapse_put, up_size, delete_lapse),
                "upload_nginx_dav": lambda: upload_once(
                    nginx.pids,
                    [*curl, f"{nginx.url}/dav/upload.bin"],
                    up_size,
                    lambda _: (root / "dav" / "upload.bin").unlink(),
                ),
                # The disk itself, durably: what Lapse's upload does besides HTTP (it fsyncs before the row commits).
                "upload_disk_fsync": lambda: upload_once(
                    [os.getpid()],
                    ["dd", f"if={up}", f"of={copy}", "bs=1M", "conv=fsync", "status=none"],
                    up_size,
                    lambda _: copy.unlink(),
                ),
            },
        )
        # The hash every upload must compute (the file's ETag), alone: on a CPU without SHA extensions it is slower
        # than the disk, and it bounds Lapse's upload rate whatever the HTTP side does.
        hash_alone = "import hashlib, sys; hashlib.file_digest(open(sys.argv[1], 'rb'), 'sha256')"
        results["upload_sha256_alone"] = repeat(
            args.runs,
            lambda: upload_once([os.getpid()], [sys.executable, "-c", hash_alone, str(up)], up_size, lambda _: None),
        )
        lapse.close()
        hello.stop()
        results |= run_accel(args, root, files, nginx)

        if not args.skip_granian and (BIN / "granian").exists():  # the same app, data and links under granian
            print("granian …", file=sys.stderr)
            ghello = python_server("hello-granian", "hello:app", workers=1, root=root, server="granian", app_dir=HERE)
            stack.callback(ghello.stop)
            ghello.start(workers=2)  # granian: a main process and its worker
            glapse = Lapse(root / "sqlite", f"sqlite:///{root / 'sqlite' / 'lapse.db'}", workers=1, server="granian")
            stack.callback(glapse.close)
            glapse.server.start(workers=2)

            def moved(url: str) -> str:
                return glapse.server.url + httpx.URL(url).path

            results["granian_hello"] = load(ghello.url + "/", args)
            results["granian_redeem_unlimited"] = load(moved(unlimited_url), args)
            ghello.stop()
            pids = glapse.server.pids
            granted = {**ranged, "Lapse-Grant": grant}
            results |= measure_streams(
                args,
                {
                    "granian": (pids, moved(big_url), {}, big_size),
                    "granian_ranged": (pids, moved(big_url), granted, big_size - half),
                },
            )
            glapse.close()

        if not args.skip_postgres:
            print("PostgreSQL …", file=sys.stderr)
            results |= postgres(args, root, files)
    if not args.skip_s3:
        results |= run_s3(args, root, files)
    return results


def run_only_s3(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The S3 section alone: it brings its own baselines (hello world, direct GETs and uploads)."""
    return run_s3(args, root, make_files(root, args.big_mib, args.upload_mib))


def postgres(args: argparse.Namespace, root: Path, files: dict[str, Path]) -> dict[str, Any]:
    name = f"lapse_bench_{os.getpid()}"
    admin = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c"]
    subprocess.run([*admin, f"CREATE DATABASE {name}"], check=True, capture_output=True)
    results: dict[str, Any] = {}
    try:
        hello = python_server("hello2", "hello:app", workers=2, root=root, server="uvicorn", app_dir=HERE)
        lapse = Lapse(root / "pg", f"postgresql://postgres@127.0.0.1:5432/{name}", workers=2, server="uvicorn")
        try:
            hello.start(workers=2)
            lapse.server.start(workers=2)
            small = lapse.upload(files["small"], max_downloads=2**31 - 1)
            unlimited_url = lapse.link(small["id"], max_downloads=None)
            results["hello_2w"] = load(hello.url + "/", args)
            results["pg_redeem_limited"] = load(small["link"]["url"], args)
            results["pg_redeem_unlimited"] = load(unlimited_url, args)
            results["exact_k_postgres"] = exact_k_under_load(lapse, small["id"], unlimited_url, args)
        finally:
            lapse.close()
            hello.stop()
    finally:
        subprocess.run([*admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True, capture_output=True)
    return results


# ---------------------------------------------------------------- report


def ratio(a: dict[str, float], b: dict[str, float]) -> float:
    return a["median"] / b["median"]


def table(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rows: list[tuple[str, str, str, str]] = []
    targets: dict[str, Any] = {}

    def target(name: str, value: float, goal: float, *, at_most: bool = False) -> str:
        met = value <= goal if at_most else value >= goal
        targets[name] = {"value": round(value, 3), "goal": goal, "met": met}
        return f"{value:.2f}× ({'≤' if at_most else '≥'} {goal}) {'MET' if met else 'NOT MET'}"

    big, upload = r["sizes"]["big"], r["sizes"]["upload"]
    hello = r["hello"]["rps"]
    rows.append(("hello world (uvicorn, 1 worker)", fmt(hello, " req/s"), fmt(r["hello"]["p99_ms"], " ms", 1), "1.00×"))
    rows.append(
        (
            "nginx static 1 KiB",
            fmt(r["nginx_1k"]["rps"], " req/s"),
            fmt(r["nginx_1k"]["p99_ms"], " ms", 1),
            f"{ratio(r['nginx_1k']['rps'], hello):.2f}×",
        )
    )
    for key, label, goal_name in (
        ("redeem_limited", "redeem 1 KiB, max_downloads=2^31-1", "P1 redeem (limited) / hello"),
        ("redeem_unlimited", "redeem 1 KiB, unlimited link", "P1 redeem (unlimited) / hello"),
    ):
        rows.append(
            (
                label,
                fmt(r[key]["rps"], " req/s"),
                fmt(r[key]["p99_ms"], " ms", 1),
                target(goal_name, ratio(r[key]["rps"], hello), 0.5),
            )
        )
    hello_beside = r["hello_beside_create"]
    rows.append(
        (
            "hello world (uvicorn), taken beside create link",
            fmt(hello_beside["rps"], " req/s"),
            fmt(hello_beside["p99_ms"], " ms", 1),
            f"{ratio(hello_beside['rps'], hello):.2f}×",
        )
    )
    rows.append(
        (
            "create link (POST, Bearer)",
            fmt(r["create_link"]["rps"], " req/s"),
            fmt(r["create_link"]["p99_ms"], " ms", 1),
            target("P5 create link / hello", ratio(r["create_link"]["rps"], hello_beside["rps"]), 0.3),
        )
    )
    k = r["exact_k_sqlite"]
    rows.append(("exact-k under load (SQLite)", f"50 GETs → {k['codes']}", "", "OK" if k["ok"] else "BROKEN"))
    if "hello_2w" in r:
        h2 = r["hello_2w"]["rps"]
        rows.append(
            (
                "hello world (2 workers)",
                fmt(h2, " req/s"),
                fmt(r["hello_2w"]["p99_ms"], " ms", 1),
                f"{ratio(h2, hello):.2f}× 1w",
            )
        )
        for key, label in (
            ("pg_redeem_limited", "PostgreSQL redeem, limited, 2 workers"),
            ("pg_redeem_unlimited", "PostgreSQL redeem, unlimited, 2 workers"),
        ):
            rows.append(
                (
                    label,
                    fmt(r[key]["rps"], " req/s"),
                    fmt(r[key]["p99_ms"], " ms", 1),
                    f"{ratio(r[key]['rps'], h2):.2f}× hello 2w",
                )
            )
        k = r["exact_k_postgres"]
        rows.append(("exact-k under load (PostgreSQL)", f"50 GETs → {k['codes']}", "", "OK" if k["ok"] else "BROKEN"))

    for count in (1, 4):
        n, lp = r[f"stream{count}_nginx"], r[f"stream{count}_lapse"]
        nr, lr = r[f"stream{count}_nginx_ranged"], r[f"stream{count}_lapse_ranged"]
        rows.append(
            (f"{count} stream(s) {big}, nginx", fmt(n["mib_s"], " MiB/s"), fmt(n["cpu_s_per_gib"], " s/GiB", 2), "")
        )
        rows.append(
            (
                f"{count} stream(s) {big}, Lapse",
                fmt(lp["mib_s"], " MiB/s"),
                fmt(lp["cpu_s_per_gib"], " s/GiB", 2),
                target(f"P2 {count}-stream / nginx", ratio(lp["mib_s"], n["mib_s"]), 0.8)
                if count == 4
                else f"{ratio(lp['mib_s'], n['mib_s']):.2f}×",
            )
        )
        rows.append(
            (
                f"{count} stream(s) ranged 2nd half, nginx",
                fmt(nr["mib_s"], " MiB/s"),
                fmt(nr["cpu_s_per_gib"], " s/GiB", 2),
                "",
            )
        )
        rows.append(
            (
                f"{count} stream(s) ranged 2nd half, Lapse",
                fmt(lr["mib_s"], " MiB/s"),
                fmt(lr["cpu_s_per_gib"], " s/GiB", 2),
                target(f"P2 {count}-stream ranged / full", ratio(lr["mib_s"], lp["mib_s"]), 0.8)
                if count == 4
                else f"{ratio(lr['mib_s'], lp['mib_s']):.2f}× full",
            )
        )
    if "granian_hello" in r:
        gh = r["granian_hello"]["rps"]
        rows.append(
            (
                "hello world (granian, 1 worker)",
                fmt(gh, " req/s"),
                fmt(r["granian_hello"]["p99_ms"], " ms", 1),
                f"{ratio(gh, hello):.2f}× uvicorn",
            )
        )
        g = r["granian_redeem_unlimited"]
        rows.append(
            (
                "redeem 1 KiB, unlimited (granian)",
                fmt(g["rps"], " req/s"),
                fmt(g["p99_ms"], " ms", 1),
                target("P1 redeem (granian) / granian hello", ratio(g["rps"], gh), 0.5),
            )
        )
        for count in (1, 4):
            n, gp, gr = r[f"stream{count}_nginx"], r[f"stream{count}_granian"], r[f"stream{count}_granian_ranged"]
            rows.append(
                (
                    f"{count} stream(s) {big}, Lapse (granian)",
                    fmt(gp["mib_s"], " MiB/s"),
                    fmt(gp["cpu_s_per_gib"], " s/GiB", 2),
                    target(f"P2 {count}-stream / nginx (granian)", ratio(gp["mib_s"], n["mib_s"]), 0.8)
                    if count == 4
                    else f"{ratio(gp['mib_s'], n['mib_s']):.2f}×",
                )
            )
            rows.append(
                (
                    f"{count} stream(s) ranged, Lapse (granian)",
                    fmt(gr["mib_s"], " MiB/s"),
                    fmt(gr["cpu_s_per_gib"], " s/GiB", 2),
                    target(f"P2 {count}-stream ranged / full (granian)", ratio(gr["mib_s"], gp["mib_s"]), 0.8)
                    if count == 4
                    else f"{ratio(gr['mib_s'], gp['mib_s']):.2f}× full",
                )
            )
        g4 = r["stream4_granian"]
        rows.append(
            (
                "CPU per GiB, 4 streams, granian / nginx",
                "",
                "",
                target(
                    "P2 CPU/GiB / nginx (granian)",
                    ratio(g4["cpu_s_per_gib"], r["stream4_nginx"]["cpu_s_per_gib"]),
                    2.0,
                    at_most=True,
                ),
            )
        )
        ggrowth = max(r[f"stream{c}_granian{s}"]["rss_growth_mib"]["max"] for c in (1, 4) for s in ("", "_ranged"))
        rows.append(
            (
                "Lapse (granian) RSS while streaming",
                f"{g4['rss_before_mib']['median']:.0f} MiB before, {g4['rss_peak_mib']['median']:.0f} peak",
                "",
                f"growth {ggrowth:.1f} MiB (< 10) {'MET' if ggrowth < 10 else 'NOT MET'}",
            )
        )
        targets["P3 RSS growth MiB (granian)"] = {"value": round(ggrowth, 1), "goal": 10, "met": ggrowth < 10}
    n4, l4 = r["stream4_nginx"], r["stream4_lapse"]
    rows.append(
        (
            "CPU per GiB, 4 streams, Lapse / nginx",
            "",
            "",
            target("P2 CPU/GiB / nginx", ratio(l4["cpu_s_per_gib"], n4["cpu_s_per_gib"]), 2.0, at_most=True),
        )
    )
    growth = max(r[f"stream{c}_lapse{s}"]["rss_growth_mib"]["max"] for c in (1, 4) for s in ("", "_ranged"))
    rows.append(
        (
            "Lapse RSS while streaming",
            f"{l4['rss_before_mib']['median']:.0f} MiB before, {l4['rss_peak_mib']['median']:.0f} peak",
            "",
            f"growth {growth:.1f} MiB (< 10) {'MET' if growth < 10 else 'NOT MET'}",
        )
    )
    targets["P3 RSS growth MiB"] = {"value": round(growth, 1), "goal": 10, "met": growth < 10}
    ul, un = r["upload_lapse"], r["upload_nginx_dav"]
    if "upload_disk_fsync" in r:
        rows.append((f"upload {upload}, disk: dd conv=fsync", fmt(r["upload_disk_fsync"]["mib_s"], " MiB/s"), "", ""))
    rows.append(
        (
            f"upload {upload}, nginx dav PUT (no fsync)",
            fmt(un["mib_s"], " MiB/s"),
            f"peak {un['rss_peak_mib']['median']:.0f} MiB",
            "",
        )
    )
    rows.append(
        (
            f"upload {upload}, Lapse PUT (fsync)",
            fmt(ul["mib_s"], " MiB/s"),
            f"peak {ul['rss_peak_mib']['median']:.0f} MiB",
            target("P4 upload / nginx", ratio(ul["mib_s"], un["mib_s"]), 0.5),
        )
    )
    if "upload_disk_fsync" in r:
        disk = ratio(ul["mib_s"], r["upload_disk_fsync"]["mib_s"])
        rows.append(("Lapse upload / durable disk copy", "", "", f"{disk:.2f}×"))
    if "upload_sha256_alone" in r:
        sha = r["upload_sha256_alone"]["mib_s"]
        rows.append((f"{upload} through sha256 alone (hashlib)", fmt(sha, " MiB/s"), "", ""))
        rows.append(("Lapse upload / sha256 alone", "", "", f"{ratio(ul['mib_s'], sha):.2f}×"))

    if "accel_redeem_limited" in r:
        rows += accel_rows(r, target)
    if "s3_hello" in r:
        rows += s3_rows(r, target)
    return render(rows), targets


def accel_rows(r: dict[str, Any], target: Callable[..., str]) -> list[tuple[str, str, str, str]]:
    """LAPSE_DELIVERY=accel: Lapse behind nginx, nginx sending the bytes (server CPU: nginx's and Lapse's)."""
    hello = r["hello"]["rps"]
    rows: list[tuple[str, str, str, str]] = []
    for key, label in (
        ("accel_redeem_limited", "accel: redeem 1 KiB via nginx, limited"),
        ("accel_redeem_unlimited", "accel: redeem 1 KiB via nginx, unlimited"),
    ):
        inline = r.get(key.removeprefix("accel_"))
        versus = f", {ratio(r[key]['rps'], inline['rps']):.2f}× inline" if inline else ""
        rows.append(
            (
                label,
                fmt(r[key]["rps"], " req/s"),
                fmt(r[key]["p99_ms"], " ms", 1),
                f"{ratio(r[key]['rps'], hello):.2f}× hello{versus}",
            )
        )
    k = r["exact_k_accel"]
    rows.append(("accel: exact-k under load", f"50 GETs → {k['codes']}", "", "OK" if k["ok"] else "BROKEN"))
    for count in (1, 4):
        n, a, ar = r[f"stream{count}_accel_nginx"], r[f"stream{count}_accel"], r[f"stream{count}_accel_ranged"]
        rows.append(
            (
                f"accel: {count} stream(s) {r['sizes']['big']}",
                fmt(a["mib_s"], " MiB/s"),
                fmt(a["cpu_s_per_gib"], " s/GiB", 2),
                target(f"P2 {count}-stream accel / nginx", ratio(a["mib_s"], n["mib_s"]), 0.95)
                if count == 4
                else f"{ratio(a['mib_s'], n['mib_s']):.2f}× nginx",
            )
        )
        rows.append(
            (
                f"accel: {count} stream(s) ranged 2nd half",
                fmt(ar["mib_s"], " MiB/s"),
                fmt(ar["cpu_s_per_gib"], " s/GiB", 2),
                target(f"P2 {count}-stream ranged / full (accel)", ratio(ar["mib_s"], a["mib_s"]), 0.8)
                if count == 4
                else f"{ratio(ar['mib_s'], a['mib_s']):.2f}× full",
            )
        )
    n4, a4 = r["stream4_accel_nginx"], r["stream4_accel"]
    rows.append(
        (
            "CPU per GiB, 4 streams, accel / nginx",
            "",
            "",
            target("P2 CPU/GiB / nginx (accel)", ratio(a4["cpu_s_per_gib"], n4["cpu_s_per_gib"]), 2.0, at_most=True),
        )
    )
    growth = max(r[f"stream{c}_accel{s}"]["rss_growth_mib"]["max"] for c in (1, 4) for s in ("", "_ranged"))
    rows.append(("accel: nginx + Lapse RSS growth while streaming", f"{growth:.1f} MiB", "", ""))
    return rows


def s3_rows(r: dict[str, Any], target: Callable[..., str]) -> list[tuple[str, str, str, str]]:
    """Lapse on S3 (a private Ceph RGW), each against its own baseline from the same section."""
    big, upload = r["sizes"]["big"], r["sizes"]["upload"]
    hello = r["s3_hello"]["rps"]
    rows = [("S3: hello world (uvicorn, 1 worker)", fmt(hello, " req/s"), fmt(r["s3_hello"]["p99_ms"], " ms", 1), "")]
    for key, label, goal in (
        ("s3_redeem_redirect_limited", "S3: redeem → 302, max_downloads=2^31-1", ""),
        ("s3_redeem_redirect", "S3: redeem → 302, unlimited link", "S1 redirect redemption / hello"),
    ):
        value = ratio(r[key]["rps"], hello)
        rows.append(
            (
                label,
                fmt(r[key]["rps"], " req/s"),
                fmt(r[key]["p99_ms"], " ms", 1),
                target(goal, value, 0.5) if goal else f"{value:.2f}× hello",
            )
        )
    local = r["s3_redeem_local"]
    versus = ratio(r["s3_redeem_redirect"]["rps"], local["rps"])
    rows.append(
        (
            "S3: (beside) redeem 1 KiB from local disk, unlimited",
            fmt(local["rps"], " req/s"),
            fmt(local["p99_ms"], " ms", 1),
            f"{ratio(local['rps'], hello):.2f}× hello; 302 / this {versus:.2f}×",
        )
    )
    d, rd, il = r["s3_get_direct"], r["s3_get_redirect"], r["s3_get_inline"]
    rows += [
        (
            f"S3: {big} GET, presigned, direct (client CPU)",
            fmt(d["mib_s"], " MiB/s"),
            fmt(d["client_cpu_s_per_gib"], " s/GiB", 2),
            "",
        ),
        (
            f"S3: {big} GET via Lapse's 302 (client CPU)",
            fmt(rd["mib_s"], " MiB/s"),
            fmt(rd["client_cpu_s_per_gib"], " s/GiB", 2),
            target("S2 302 download / direct", ratio(rd["mib_s"], d["mib_s"]), 0.95),
        ),
        (
            f"S3: {big} GET, inline via Lapse (Lapse CPU)",
            fmt(il["mib_s"], " MiB/s"),
            fmt(il["lapse_cpu_s_per_gib"], " s/GiB", 2),
            target("S3 inline download / direct", ratio(il["mib_s"], d["mib_s"]), 0.8),
        ),
        (
            "S3: CPU per GiB, Lapse inline / client direct",
            "",
            "",
            target(
                "S3 inline Lapse CPU/GiB / direct client CPU/GiB",
                ratio(il["lapse_cpu_s_per_gib"], d["client_cpu_s_per_gib"]),
                2.0,
                at_most=True,
            ),
        ),
        (
            "S3: store CPU per GiB, direct / 302 / inline",
            "",
            " / ".join(
                f"{r[k]['store_cpu_s_per_gib']['median']:.2f}"
                for k in ("s3_get_direct", "s3_get_redirect", "s3_get_inline")
            )
            + " s/GiB",
            "",
        ),
    ]
    ud, ul = r["s3_upload_direct"], r["s3_upload_lapse"]
    rows += [
        (
            f"S3: upload {upload}, direct multipart (client CPU)",
            fmt(ud["mib_s"], " MiB/s"),
            fmt(ud["client_cpu_s_per_gib"], " s/GiB", 2),
            "",
        ),
        (
            f"S3: upload {upload}, Lapse PUT (Lapse CPU)",
            fmt(ul["mib_s"], " MiB/s"),
            fmt(ul["lapse_cpu_s_per_gib"], " s/GiB", 2),
            target("S4 upload / direct multipart", ratio(ul["mib_s"], ud["mib_s"]), 0.8),
        ),
    ]
    rows.append(
        (
            "S3: store CPU per GiB, direct / Lapse upload",
            "",
            f"{ud['store_cpu_s_per_gib']['median']:.2f} / {ul['store_cpu_s_per_gib']['median']:.2f} s/GiB",
            "",
        )
    )
    first = r["s3_upload_first"]
    growth = max(first["rss_growth_mib"], ul["rss_growth_mib"]["max"])
    targets_met = growth < 64
    rows.append(
        (
            f"S3: Lapse RSS during a {upload} upload",
            f"{first['rss_before_mib']:.0f} MiB before the first, {ul['rss_peak_mib']['max']:.0f} peak",
            f"first +{first['rss_growth_mib']:.1f}, then +{ul['rss_growth_mib']['median']:.1f} MiB",
            f"growth {growth:.1f} MiB (< 64) {'MET' if targets_met else 'NOT MET'}",
        )
    )
    target("S5 RSS growth MiB during an S3 upload", growth, 64, at_most=True)
    return rows


def only_s3_table(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    targets: dict[str, Any] = {}
    return render(s3_rows(r, target_recorder(targets))), targets


def target_recorder(targets: dict[str, Any]) -> Callable[..., str]:
    def target(name: str, value: float, goal: float, *, at_most: bool = False) -> str:
        met = value <= goal if at_most else value >= goal
        targets[name] = {"value": round(value, 3), "goal": goal, "met": met}
        return f"{value:.2f}× ({'≤' if at_most else '≥'} {goal}) {'MET' if met else 'NOT MET'}"

    return target


def only_accel_table(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`--only-accel`: the baselines measured, then the accel rows."""
    targets: dict[str, Any] = {}

    def target(name: str, value: float, goal: float, *, at_most: bool = False) -> str:
        met = value <= goal if at_most else value >= goal
        targets[name] = {"value": round(value, 3), "goal": goal, "met": met}
        return f"{value:.2f}× ({'≤' if at_most else '≥'} {goal}) {'MET' if met else 'NOT MET'}"

    rows = [
        ("hello world (uvicorn, 1 worker)", fmt(r["hello"]["rps"], " req/s"), fmt(r["hello"]["p99_ms"], " ms", 1), ""),
        ("nginx static 1 KiB", fmt(r["nginx_1k"]["rps"], " req/s"), fmt(r["nginx_1k"]["p99_ms"], " ms", 1), ""),
    ]
    for count in (1, 4):
        for key, label in (
            (f"stream{count}_accel_nginx", r["sizes"]["big"]),
            (f"stream{count}_accel_nginx_ranged", "ranged 2nd half"),
        ):
            rows.append(
                (
                    f"nginx static: {count} stream(s) {label}",
                    fmt(r[key]["mib_s"], " MiB/s"),
                    fmt(r[key]["cpu_s_per_gib"], " s/GiB", 2),
                    "",
                )
            )
    rows += accel_rows(r, target)
    return render(rows), targets


def render(rows: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    header = ("measurement", "median (min–max)", "p99 / CPU / RSS", "ratio")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration of each run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--stream-runs",
        type=int,
        default=11,
        help="rounds of every stream shape: four 256 MiB streams last ~0.3 s, and one scheduling hiccup moves such"
        " a sample by 10-15 %%, so these take more rounds than the wrk runs (they cost ~1 s a round)",
    )
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--upload-mib", type=int, default=1024)
    parser.add_argument("--skip-granian", action="store_true", help="skip the extra run under granian")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-s3", action="store_true", help="skip the S3 section (it needs Ceph RGW installed)")
    parser.add_argument(
        "--only",
        choices=("accel", "s3"),
        help="one section and the baselines its ratios need: accel (≈ 25 s) or s3 (a private Ceph RGW, ≈ 4 min)",
    )
    parser.add_argument("--only-accel", action="store_true", help="the same as --only accel")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    ensure_tools()
    if args.only_accel:
        args.only = "accel"
    if args.only and args.output == RESULTS:
        args.output = RESULTS.with_name(f"bench-{args.only}.json")  # the full run's results stay as they are
    runner, tabulate = {
        None: (run, table),
        "accel": (run_only_accel, only_accel_table),
        "s3": (run_only_s3, only_s3_table),
    }[args.only]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lapse-bench-") as tmp:
        Path(tmp).chmod(0o755)  # nginx's worker reads the static files; nothing secret in here
        results = runner(args, Path(tmp))
    results["sizes"] = {"big": size_label(args.big_mib), "upload": size_label(args.upload_mib)}
    text, targets = tabulate(results)
    cpu = platform.processor() or platform.machine()
    machine = f"{platform.node()}: {os.cpu_count()} CPUs, {cpu}, Python {platform.python_version()}"
    rounds = f"wrk -t1 -c{args.connections} -d{args.seconds}s × {args.runs}, streams × {args.stream_runs}"
    print(f"\n{machine}; {rounds}\n")
    print(text)
    print(f"\n{time.monotonic() - started:.0f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "machine": machine,
                "args": {k: str(v) for k, v in vars(args).items()},
                "targets": targets,
                "results": results,
            },
            indent=2,
        )
    )
    if not all(k["ok"] for name, k in results.items() if name.startswith("exact_k")):
        raise SystemExit("exact-k did not hold under load")


if __name__ == "__main__":
    main()
