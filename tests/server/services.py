"""Real `lapse serve` processes for the server tests: a running server with an API key, started and stopped."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.process import LapseServer, fresh_database

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
    """A fresh migrated database, a key made with `lapse keys create`, and a server on both."""
    with fresh_database(kind, root, migrated=True) as url:
        server = LapseServer(root, url, workers=workers, env=env)
        key = server.create_key("server-tests", admin=admin)
        with serving(server):
            yield Service(server, key)
