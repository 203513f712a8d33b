"""nginx in front of Lapse for the accel scenario, configured from the repo's deploy/nginx/lapse.conf as shipped:
only its placeholders (Lapse's address, the listen address, the blob folder) are replaced."""

import shutil
from pathlib import Path

from procs import Server, free_port

DEPLOY_CONF = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "lapse.conf"
MAIN_CONF = """
user root;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx.error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/lapse.conf;
}}
"""


def front(root: Path, *, lapse_port: int, blobs: Path) -> Server:
    """nginx (1 worker, as the static baseline) proxying to Lapse on `lapse_port`; `start(workers=2)` it."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = DEPLOY_CONF.read_text()
    for old, new in {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{lapse_port};",
        "listen 80;": f"listen 127.0.0.1:{port};",
        "/var/lib/lapse/data/blobs/": f"{blobs}/",
    }.items():
        if old not in site:
            raise SystemExit(f"{old!r} is no longer in {DEPLOY_CONF}")
        site = site.replace(old, new)
    (root / "lapse.conf").write_text(site)
    conf = root / "nginx.conf"
    conf.write_text(MAIN_CONF.format(root=root))
    command = [shutil.which("nginx") or "nginx", "-p", f"{root}/", "-c", str(conf), "-g", "daemon off;"]
    return Server("nginx-accel", command, port=port, env={}, cwd=root, ready_path="/healthz")
