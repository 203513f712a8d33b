"""A real server streaming a large file (by zero-copy send, lapse.zerocopy): a client that hangs up mid-stream
leaves no file open behind it."""

import os
from pathlib import Path

import anyio
import httpx
import pytest

from tests.server.api import bearer, eventually, fresh_client, read_response_head, share
from tests.server.services import Service

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
    with anyio.fail_after(10):  # mid-stream: the server holds the blob open, and the duplicate it sendfiles from
        await eventually(lambda: len(open_blobs(shared)) == 2)
    await stream.aclose()
    with anyio.fail_after(10):  # it notices the hang-up, stops reading and closes the file
        await eventually(lambda: open_blobs(shared) == [])


async def test_every_shape_of_a_large_file_answer_carries_the_exact_bytes(shared: Service) -> None:
    """Whole (zero-copy), one range (zero-copy), several ranges (streamed by FileResponse), HEAD, and a password
    POST answered as the GET it stands for (zero-copy)."""
    body = os.urandom(3 * 1024 * 1024 + 17)
    size = len(body)
    with anyio.fail_after(60):
        async with fresh_client(shared.url) as client:
            shaped = await share(client, shared.key, body, "shapes.bin", max_downloads=10)
            path = shaped["link"]["path"]
            whole = await client.get(path)
            assert (whole.status_code, whole.headers["content-length"]) == (200, str(size))
            assert whole.content == body

            one = await client.get(path, headers={"Range": "bytes=1000-2000999"})
            assert one.status_code == 206
            assert one.headers["content-range"] == f"bytes 1000-2000999/{size}"
            assert one.headers["content-length"] == "2000000"
            assert one.content == body[1000:2001000]

            several = await client.get(path, headers={"Range": "bytes=0-9,-10"})
            assert several.status_code == 206
            assert several.headers["content-type"].startswith("multipart/byteranges; boundary=")
            assert body[:10] in several.content
            assert body[-10:] in several.content

            head = await client.head(path)
            assert (head.status_code, head.headers["content-length"], head.content) == (200, str(size), b"")

            made = await client.post(
                f"/api/v1/files/{shaped['id']}/links", json={"password": "open sesame"}, headers=bearer(shared.key)
            )
            locked = httpx.URL(made.json()["url"]).path
            posted = await client.post(locked, data={"password": "open sesame"})
            assert (posted.status_code, posted.content) == (200, body)
