"""Real `lapse serve` processes on SQLite and PostgreSQL.

`shared` is one server per database for the whole session (tests on it only add files and links of their own);
tests that need a pristine data folder, other settings, or to kill the server start their own.
"""

import secrets
from collections.abc import Iterator

import pytest

from tests.helpers import s3_server_env
from tests.server.services import DATABASES, Service, service


@pytest.fixture(scope="session", params=DATABASES)
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`lapse serve --workers 2` with default settings, shared by every test that only adds its own rows.

    A test parametrizing it indirectly with `<database>-<storage mode>` (tests/helpers.py: SHARED_IN_EVERY_STORAGE)
    gets one with its blobs in the RGW's bucket instead, sending downloads inline or redirecting them to the store.
    """
    kind, _, mode = request.param.partition("-")
    env = {}
    if mode:
        env = s3_server_env(request.getfixturevalue("rgw"), mode, prefix=f"{request.param}-{secrets.token_hex(4)}/")
    with service(kind, tmp_path_factory.mktemp(f"shared-{request.param}"), env=env) as running:
        yield running


@pytest.fixture(params=DATABASES)
def kind(request: pytest.FixtureRequest) -> str:
    """The database a test that starts its own server runs on."""
    value: str = request.param
    return value
