"""No request shape puts a live secret in the access log: link tokens behind odd paths, API keys, grants and
passwords in query strings. Raw sockets, so every request target reaches the server exactly as written."""

import re

import anyio
import pytest

from tests.server.api import fresh_client, read_response_head, share
from tests.server.services import Service

pytestmark = [pytest.mark.anyio, pytest.mark.server]


async def raw_get(port: int, target: str) -> str:
    """Send `GET target` as written (no client normalises it) and answer the status code."""
    with anyio.fail_after(30):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            status, _ = await read_response_head(stream)
    return status.split(" ")[1]


async def test_no_request_shape_logs_a_secret(shared: Service) -> None:
    async with fresh_client(shared.url) as client:
        link = (await share(client, shared.key, b"secret bytes", "redact.txt", max_downloads=50))["link"]
        token = link["path"].rsplit("/", 1)[1]
        grant = (await client.get(link["path"], headers={"range": "bytes=0-0"})).headers["lapse-grant"]
    key, mac = shared.key, grant.rsplit(".", 1)[1]
    encoded = "".join(f"%{ord(c):02X}" for c in token)
    targets = [
        f"/d/{token}",
        f"/d//{token}",
        f"/d/./{token}",
        f"/d/%2e%2e/{token}",
        f"/d/%2E%2E/{token}",
        f"/d/../d/{token}",
        f"//d/{token}",
        f"/s//{token}",
        f"/s/./{token}",
        f"/d/{token}/",
        f"/d/{token}.zip",
        f"/d/{encoded}",
        f"/D/{token}",
        f"/anything/{token}",
        f"/api/v1/files?api_key={key}",
        f"/api/v1/files?API_KEY={key}",
        f"/api/v1/files?api%5Fkey={key}",
        f"/healthz?key={key}",
        f"/d/{token}?token={token}",
        f"/d/{token}?grant={grant}",
        f"/d/{token}?Lapse-Grant={grant}",
        "/d/x?password=hunter2-short",
        "/d/x?Password=hunter2-short&x=1",
        "/files/x?X-Amz-Signature=0badc0ffee42&X-Amz-Credential=AKIDEXAMPLE42",
        f"/d/{token};jsessionid=1",
        f"/d/{token}#frag",
    ]
    statuses = {}
    for number, target in enumerate(targets):
        separator = "&" if "?" in target else "?"
        marked = (
            target.replace("#", f"{separator}probe={number}#", 1)
            if "#" in target
            else f"{target}{separator}probe={number}"
        )
        statuses[number] = await raw_get(shared.server.port, marked)

    def logged() -> str:
        return shared.server.stdout_path.read_text() + shared.server.stderr_path.read_text()

    with anyio.fail_after(20):
        while not all(f"probe={number} " in logged() for number in statuses):  # noqa: ASYNC110 - another process
            await anyio.sleep(0.05)
    log = logged()
    for secret in (
        token,
        encoded,
        key,
        key.removeprefix("lapse_"),
        grant,
        mac,
        "hunter2-short",
        "0badc0ffee42",
        "AKIDEXAMPLE42",
    ):
        assert secret not in log, secret
    for number, status in statuses.items():
        # Still useful: the method, the redacted target and the status of every request.
        line = re.search(rf'"GET (\S*[?&]probe={number}) HTTP/1\.1" (\d+)', log)
        assert line is not None, number
        assert line.group(2) == status
        assert "…" in line.group(1), line.group(1)
