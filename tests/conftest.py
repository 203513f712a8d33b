"""Fixtures: real SQLite and PostgreSQL, the app with its lifespan run, keys made through the service."""

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from starlette.types import ASGIApp

from lapse.app import create_app
from lapse.runtime import Runtime, open_runtime
from lapse.settings import Settings
from tests.databases import TEMPLATES, Templates, empty_tables, migrated_postgres, migrated_sqlite, run_isolated
from tests.helpers import TEST_SECRET, ApiClient, new_key

REDIS_URL = os.environ.get("LAPSE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def database_templates() -> Iterator[Templates]:
    """The migrated templates every test database is copied from: made on first use, removed at the end."""
    yield TEMPLATES
    TEMPLATES.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated database of this worker's own on the machine's PostgreSQL (a copy of the template), for the
    session, dropped at the end.

    Never skipped: the PostgreSQL tests are half the point, and CI must fail if the server is not there.
    """
    with migrated_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis. Never skipped, as PostgreSQL: tests keep to keys of their own and remove them."""
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database with nothing in it: a copy of the template file for this test alone, or the worker's
    PostgreSQL database with every table emptied."""
    if request.param == "sqlite":
        return migrated_sqlite(tmp_path / "lapse.db")
    url: str = request.getfixturevalue("postgres_url")
    run_isolated(lambda: empty_tables(url))
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key=SecretStr(TEST_SECRET),
        max_upload_size=1024 * 1024,
    )


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as runtime:
        yield runtime


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[ASGIApp]:
    """The app with its lifespan run; requests get the lifespan's state through this wrapper."""
    async with LifespanManager(create_app(settings, sweep=False)) as manager:
        yield manager.app


@pytest.fixture
async def http(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def alice(http: httpx.AsyncClient, runtime: Runtime) -> ApiClient:
    return ApiClient(http, await new_key(runtime, "alice", admin=False))


@pytest.fixture
async def bob(http: httpx.AsyncClient, runtime: Runtime) -> ApiClient:
    return ApiClient(http, await new_key(runtime, "bob", admin=False))


@pytest.fixture
async def admin(http: httpx.AsyncClient, runtime: Runtime) -> ApiClient:
    return ApiClient(http, await new_key(runtime, "root", admin=True))


@pytest.fixture
def blobs(settings: Settings) -> Path:
    return settings.data_dir / "blobs"
