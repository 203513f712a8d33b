"""Real `lapse serve` processes on SQLite and PostgreSQL.

`shared` is one server per database for the whole session (tests on it only add files and links of their own);
tests that need a pristine data folder, other settings, or to kill the server start their own.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server.process import LapseServer, fresh_database

DATABASES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Service:
    """A running server and an API key for it."""

    server: LapseServer
    key: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@contextmanager
def serving(server: LapseServer) -> Iterator[LapseServer]:
    """Start the server; stop it however the block ends, then print its logs (pytest shows them on failure)."""
    try:
        server.start()
        yield server
    finally:
        server.stop()
        print(server.logs())


@contextmanager
def service(
    kind: str, root: Path, *, admin: bool = False, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[Service]:
    """A fresh database, a key made with `lapse keys create` (which also migrates), and a server on both."""
    with fresh_database(kind, root) as url:
        server = LapseServer(root, url, workers=workers, env=env)
        key = server.create_key("server-tests", admin=admin)
        with serving(server):
            yield Service(server, key)


@pytest.fixture(scope="session", params=DATABASES)
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`lapse serve --workers 2` with default settings, shared by every test that only adds its own rows."""
    kind: str = request.param
    with service(kind, tmp_path_factory.mktemp(f"shared-{kind}")) as running:
        yield running


@pytest.fixture(params=DATABASES)
def kind(request: pytest.FixtureRequest) -> str:
    """The database a test that starts its own server runs on."""
    value: str = request.param
    return value
