"""A real server streaming a large file: a client that hangs up mid-stream leaves no file open behind it."""

import os
from pathlib import Path

import anyio
import httpx
import pytest

from tests.server.api import eventually, fresh_client, read_response_head, share
from tests.server.conftest import Service

pytestmark = pytest.mark.anyio


def open_blobs(service: Service) -> list[str]:
    """Files under the server's blob folder held open by any of its processes (the parent or a worker)."""
    group = service.server.process_group()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) != group:
                continue
            targets = [str(fd.readlink()) for fd in (proc / "fd").iterdir()]
        except OSError:  # gone meanwhile
            continue
        found += [target for target in targets if target.startswith(str(service.server.blobs))]
    return found


async def test_a_stream_cut_off_by_its_client_closes_its_file(shared: Service) -> None:
    body = os.urandom(32 * 1024 * 1024)  # far more than the socket buffers hold: the server must wait on us
    async with fresh_client(shared.url) as client:
        link = (await share(client, shared.key, body, "cut-off.bin", max_downloads=1))["link"]
    url = httpx.URL(link["url"])
    assert url.host
    assert url.port
    stream = await anyio.connect_tcp(url.host, url.port)
    await stream.send(f"GET {link['path']} HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode())
    with anyio.fail_after(10):
        status, headers = await read_response_head(stream)
    assert status.split(" ")[1] == "200"
    assert headers["content-length"] == str(len(body))
    with anyio.fail_after(10):  # mid-stream: the server holds the blob open
        await eventually(lambda: len(open_blobs(shared)) == 1)
    await stream.aclose()
    with anyio.fail_after(10):  # it notices the hang-up, stops reading and closes the file
        await eventually(lambda: open_blobs(shared) == [])
