"""Uploads against a real server: refused before the body when unauthenticated, capped while streaming, and
durable-before-visible when the server is killed mid-upload (docs/architecture.md, uploads)."""

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import pytest

from lapse.sweeper import STALE_AFTER
from tests.outbox import age_intents
from tests.process import query
from tests.server.api import bearer, eventually, fresh_client, list_files, read_response_head, stored_files
from tests.server.services import DATABASES, Service, service

pytestmark = [pytest.mark.anyio, pytest.mark.server]

BOUNDARY = "lapse-server-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
PART_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
    "Content-Type: application/octet-stream\r\n\r\n"
).encode()
# (method, path, content type, what the body starts with) for the two ways to upload.
UPLOADS = {
    "put": ("PUT", "/api/v1/files/big.bin", "application/octet-stream", b""),
    "post": ("POST", "/api/v1/files", MULTIPART, PART_HEAD),
}


@pytest.fixture(scope="module", params=DATABASES)
def guarded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server with a 1 MiB upload cap and nothing uploaded yet; its key is an admin's, so it lists every file."""
    kind: str = request.param
    root = tmp_path_factory.mktemp(f"guarded-{kind}")
    with service(kind, root, admin=True, env={"LAPSE_MAX_UPLOAD_SIZE": "1M"}) as running:
        yield running


async def _assert_nothing_kept(running: Service) -> None:
    assert stored_files(running.server.blobs) == []
    async with fresh_client(running.url) as client:
        assert await list_files(client, running.key) == []


def _request_head(method: str, path: str, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("upload", UPLOADS)
async def test_unauthenticated_upload_is_refused_before_its_body_arrives(guarded: Service, upload: str) -> None:
    method, path, content_type, preamble = UPLOADS[upload]
    port = guarded.server.port
    head = _request_head(method, path, port, {"Content-Type": content_type, "Content-Length": "50000000"})
    body = preamble + os.urandom(64 * 1024 - len(preamble))
    with anyio.fail_after(30):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(head + body)
            # 49.9 MB are never sent: an answer at all proves the server did not wait for them.
            try:
                with anyio.fail_after(5):
                    status, headers = await read_response_head(stream)
            except TimeoutError:
                pytest.fail("no answer within 5 s: the server is waiting for the body")
        assert status.startswith("HTTP/1.1 401 "), status
        assert headers["content-type"] == "application/problem+json"
        assert headers["www-authenticate"].startswith("Bearer")
        await _assert_nothing_kept(guarded)


async def _body(total: int, piece: int = 64 * 1024, preamble: bytes = b"") -> AsyncIterator[bytes]:
    yield preamble
    sent = 0
    while sent < total:
        yield os.urandom(min(piece, total - sent))
        sent += piece


@pytest.mark.parametrize("upload", UPLOADS)
async def test_streamed_upload_over_the_cap_is_refused_and_nothing_is_kept(guarded: Service, upload: str) -> None:
    method, path, content_type, preamble = UPLOADS[upload]
    with anyio.fail_after(30):
        async with fresh_client(guarded.url) as client:
            # A generator body has no Content-Length: httpx sends it chunked, so only streaming can catch it.
            request = client.build_request(
                method,
                path,
                content=_body(3 * 1024 * 1024, preamble=preamble),
                headers={**guarded.auth, "Content-Type": content_type},
            )
            assert "content-length" not in request.headers
            assert request.headers["transfer-encoding"] == "chunked"
            response = await client.send(request)
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        await _assert_nothing_kept(guarded)


def _temp_files(blobs: Path) -> list[Path]:
    return [p for p in blobs.glob("*/.tmp-*") if p.is_file()]


async def _wait_for_temp_file(blobs: Path, *, at_least: int) -> Path:
    """Wait until one upload's temp file under blobs/*/ holds `at_least` bytes."""

    def written() -> bool:
        temps = _temp_files(blobs)
        assert len(temps) <= 1, temps
        return bool(temps) and temps[0].stat().st_size >= at_least

    with anyio.fail_after(20):
        await eventually(written)
    return _temp_files(blobs)[0]


@pytest.fixture
def killable(kind: str, tmp_path: Path) -> Iterator[Service]:
    """A server of this test's own (it gets killed), with the default upload cap and a user key."""
    with service(kind, tmp_path) as running:
        yield running


async def test_server_killed_mid_upload_leaves_no_row_and_the_sweeper_removes_its_temp_file(
    killable: Service,
) -> None:
    server = killable.server
    mib = 1024 * 1024
    head = _request_head(
        "PUT",
        "/api/v1/files/killed.bin",
        server.port,
        {**killable.auth, "Content-Type": "application/octet-stream", "Content-Length": str(20 * mib)},
    )
    with anyio.fail_after(90):
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(head)
            for _ in range(5):
                await stream.send(os.urandom(mib))
            # The server writes in 1 MiB steps: 4 MiB on disk means it is streaming this very body.
            temp = await _wait_for_temp_file(server.blobs, at_least=4 * mib)
            status = await anyio.to_thread.run_sync(server.kill)
        assert status == -9, f"lapse serve exited with {status} before the kill"
        assert temp.exists(), "the temp file vanished although nobody was left to remove it"
        assert stored_files(server.blobs) == [temp], "a blob was published for an unfinished upload"

        assert await query(server.database_url, "SELECT id FROM files") == []
        await anyio.to_thread.run_sync(server.start)
        async with fresh_client(server.url) as client:
            assert await list_files(client, killable.key) == []

        # The upload's intent is still fresh: it may be alive, and a sweep leaves it alone...
        swept = await anyio.to_thread.run_sync(server.cli, "sweep")
        assert swept.returncode == 0, swept.stderr
        assert temp.exists()
        # ...and aborts it once its heartbeat is older than any live upload's could be.
        await age_intents(server.database_url, 2 * STALE_AFTER)
        swept = await anyio.to_thread.run_sync(server.cli, "sweep")
        assert swept.returncode == 0, swept.stderr
        assert "1 abandoned uploads" in swept.stderr, swept.stderr
        assert stored_files(server.blobs) == []
        assert await query(server.database_url, "SELECT storage_key FROM upload_intents") == []


async def _check_not_blocked(url: str, key: str) -> None:
    async with fresh_client(url, timeout=3.0) as client:
        try:
            assert (await client.get("/readyz")).status_code == 200
            assert await list_files(client, key) == []
        except httpx.TimeoutException as exc:
            raise AssertionError(f"a request waited on the upload in flight: {exc!r}") from exc


async def test_an_upload_in_flight_does_not_hold_up_other_requests(guarded: Service) -> None:
    server = guarded.server
    # A key never used yet: its first use writes last_used_at, inside the upload's transaction.
    key = await anyio.to_thread.run_sync(server.create_key, "slow-uploader")
    head = _request_head(
        "PUT", "/api/v1/files/slow.bin", server.port, {**bearer(key), "Content-Length": str(900 * 1024)}
    )
    with anyio.fail_after(30):
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(head + os.urandom(300 * 1024))
            await _wait_for_temp_file(server.blobs, at_least=0)
            await _check_not_blocked(server.url, key)
        # The client went away mid-body: its temp file goes with it.
        await eventually(lambda: not stored_files(server.blobs))
