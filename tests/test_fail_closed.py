"""Fail closed: with the database or the bytes out of reach, answer 503 + Retry-After, never count, never 500."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from lapse.app import create_app
from lapse.settings import Settings
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
