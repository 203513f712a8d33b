"""Real `lapse serve` processes on SQLite and PostgreSQL.

`shared` is one server per database for the whole session (tests on it only add files and links of their own);
tests that need a pristine data folder, other settings, or to kill the server start their own.
"""

from collections.abc import Iterator

import pytest

from tests.server.services import DATABASES, Service, service


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
