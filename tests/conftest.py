"""Fixtures: real SQLite and PostgreSQL, the app with its lifespan run, keys made through the service."""

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from sqlalchemy import text
from starlette.types import ASGIApp

from lapse.app import create_app
from lapse.db.migrate import upgrade
from lapse.db.session import create_engine
from lapse.runtime import Runtime, open_runtime
from lapse.settings import Settings
from tests.helpers import ApiClient, new_key

PG_ADMIN_URL = os.environ.get("LAPSE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LAPSE_TEST_REDIS", "redis://127.0.0.1:6379/0")
TEST_SECRET = "test-secret-" + "x" * 40
T = TypeVar("T")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _isolated(work: Callable[[], T]) -> T:
    """Run set-up work on a thread of its own, outside the test's event loop: Alembic runs its own loop, and
    these fixtures are sync so that parametrised fixtures can ask for them."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


async def _execute(url: str, statement: str, **engine_options: Any) -> None:
    engine = create_engine(url, **engine_options)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of our own on the machine's PostgreSQL, migrated once, dropped at the end.

    Never skipped: the PostgreSQL tests are half the point, and CI must fail if the server is not there.
    """
    name = f"lapse_test_{secrets.token_hex(4)}"
    _isolated(lambda: asyncio.run(_execute(PG_ADMIN_URL, f'CREATE DATABASE "{name}"', isolation_level="AUTOCOMMIT")))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    _isolated(lambda: upgrade(url))
    yield url
    drop = f'DROP DATABASE "{name}" WITH (FORCE)'
    _isolated(lambda: asyncio.run(_execute(PG_ADMIN_URL, drop, isolation_level="AUTOCOMMIT")))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis. Never skipped, as PostgreSQL: tests keep to keys of their own and remove them."""
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lapse.db'}"
        _isolated(lambda: upgrade(url))
        yield url
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    _isolated(lambda: asyncio.run(_execute(url, "TRUNCATE links, files, api_keys")))


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
