"""Fail closed: with the database or the bytes out of reach, answer 503 + Retry-After, never count, never 500."""

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from starlette.types import Message

from lapse.api.file_responses import JudgedFileResponse
from lapse.app import create_app
from lapse.links import redemption
from lapse.settings import Settings
from lapse.storage import local
from lapse.storage.base import SMALL_BLOB, BlobStat, LocalFile
from tests.helpers import ApiClient, stored_files

pytestmark = pytest.mark.anyio


@pytest.fixture
async def dead_db_http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        database_url="postgresql://nobody@127.0.0.1:1/none",  # nothing listens on port 1
        secret_key=SecretStr("s" * 40),
    )
    app = create_app(settings, sweep=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/d/" + "a" * 32),
        ("HEAD", "/d/" + "a" * 32),
        ("GET", "/api/v1/files"),
        ("PUT", "/api/v1/files/x"),
    ],
)
async def test_database_down_is_503(dead_db_http: httpx.AsyncClient, method: str, path: str) -> None:
    response = await dead_db_http.request(method, path, headers={"authorization": "Bearer lapse_x"}, content=b"x")
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    if method != "HEAD":
        assert response.headers["content-type"] == "application/problem+json"
        assert "Traceback" not in response.text


async def test_readyz_reports_the_database(dead_db_http: httpx.AsyncClient) -> None:
    assert (await dead_db_http.get("/healthz")).status_code == 200
    ready = await dead_db_http.get("/readyz")
    assert ready.status_code == 503
    assert "retry-after" in ready.headers


async def test_readyz_ok(http: httpx.AsyncClient) -> None:
    assert (await http.get("/readyz")).json() == {"status": "ready"}


async def test_missing_bytes_refuse_before_counting(
    alice: ApiClient, http: httpx.AsyncClient, settings: Settings
) -> None:
    link = await alice.share(b"x", max_downloads=1)
    for blob in stored_files(settings.data_dir / "blobs"):
        blob.unlink()
    response = await http.get(link["path"])
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()["downloads"] == 0


async def test_bytes_gone_after_their_stat_refuse_before_counting(
    alice: ApiClient, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = await alice.share(bytes(SMALL_BLOB + 1), max_downloads=1)  # large: streamed from the file
    looked_at = local._stat_and_read_small

    def then_deleted(path: Path) -> BlobStat:  # the bytes removed between the look at the file and the download
        stat = looked_at(path)
        path.unlink()
        return stat

    monkeypatch.setattr(local, "_stat_and_read_small", then_deleted)
    response = await http.get(link["path"])
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()["downloads"] == 0


@pytest.mark.parametrize(
    ("range_", "expected"),
    [(None, [slice(None)]), ("bytes=5-", [slice(5, None)]), ("bytes=0-9,20-29", [slice(0, 10), slice(20, 30)])],
)
async def test_the_file_checked_before_counting_is_the_one_sent(
    alice: ApiClient,
    http: httpx.AsyncClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    range_: str | None,
    expected: list[slice],
) -> None:
    data = os.urandom(SMALL_BLOB + 1)
    link = await alice.share(data, max_downloads=1)
    redeem = redemption.redeem

    async def then_deleted(*args: Any, **kwargs: Any) -> None:  # the blob unlinked once the download is counted
        await redeem(*args, **kwargs)
        for blob in stored_files(settings.data_dir / "blobs"):
            blob.unlink()

    monkeypatch.setattr(redemption, "redeem", then_deleted)
    response = await http.get(link["path"], headers={"range": range_} if range_ else {})
    assert response.status_code == (200 if range_ is None else 206)
    for part in expected:
        assert data[part] in response.content


async def test_a_server_offering_pathsend_is_sent_the_opened_file_not_the_path(tmp_path: Path) -> None:
    # granian offers `http.response.pathsend`: FileResponse would hand it the path, which the server reopens.
    data = os.urandom(SMALL_BLOB + 1)
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    opened = blob.open("rb")
    blob.unlink()  # deleted once the download was counted: only the open file still has the bytes
    local = LocalFile(file=opened, path=blob, stat=os.fstat(opened.fileno()))
    response = JudgedFileResponse(local, headers={"Content-Type": "application/octet-stream"}, ranges=None)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        raise AssertionError("nothing to receive")

    scope = {
        "type": "http",
        "asgi": {"spec_version": "2.4"},
        "method": "GET",
        "path": "/d/x",
        "headers": [],
        "extensions": {"http.response.pathsend": {}},
    }
    await response(scope, receive, send)
    assert [m["type"] for m in sent[:1]] == ["http.response.start"]
    assert {m["type"] for m in sent[1:]} == {"http.response.body"}
    assert b"".join(m["body"] for m in sent[1:]) == data
    assert opened.closed
