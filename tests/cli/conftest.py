"""A real `lapse serve` (SQLite, one worker) for the client commands, and a way to run `lapse` against it.

Commands run in-process through Typer's runner, with the server, key and config folder given explicitly, so
nothing from the developer's shell or home folder leaks in; `get` resume tests run a real subprocess.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import Lapse, start_server
from tests.process import LapseServer


@pytest.fixture(scope="session")
def lapse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LapseServer]:
    # Room for the 50 MB round trip; generous password attempts, since every test comes from 127.0.0.1.
    env = {"LAPSE_MAX_UPLOAD_SIZE": "64M", "LAPSE_PASSWORD_ATTEMPTS": "100"}
    yield from start_server(tmp_path_factory.mktemp("cli-server"), env)


@pytest.fixture(scope="session")
def lapse_key(lapse_server: LapseServer) -> str:
    return lapse_server.create_key("cli-tests")


@pytest.fixture
def lapse(lapse_server: LapseServer, lapse_key: str, tmp_path: Path) -> Lapse:
    return Lapse(lapse_server, lapse_key, config_home=tmp_path / "config")
