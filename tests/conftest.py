"""Fixtures: real SQLite and PostgreSQL, the app with its lifespan run, keys made through the service, and a real
Ceph RGW (one per session or xdist worker) for blobs in a bucket.

`storage_mode` is where the blobs live and how downloads leave: `local` (a folder, the default), `s3-inline` (a
bucket, bytes sent through Lapse) or `s3-redirect` (a bucket, downloads answered 302 to a presigned URL, which the
`http` client follows as a browser would). A test module opts in to the other modes by parametrizing it
(tests/helpers.py: STORAGE_MATRIX).
"""

import functools
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from botocore.loaders import JSONFileLoader
from pydantic import SecretStr
from starlette.types import ASGIApp

from lapse.app import create_app
from lapse.runtime import Runtime, open_runtime
from lapse.settings import Settings
from tests.databases import TEMPLATES, Templates, empty_tables, migrated_postgres, migrated_sqlite, run_isolated
from tests.helpers import TEST_SECRET, ApiClient, Browser, Store, new_key
from tests.s3.conftest import BUCKET, s3_client, s3_settings_for
from tests.s3.rgw import Rgw, RgwCluster

REDIS_URL = os.environ.get("LAPSE_TEST_REDIS", "redis://127.0.0.1:6379/0")


_load_model = JSONFileLoader.load_file


@functools.cache
def _botocore_model(file_path: str) -> Any:
    return _load_model(JSONFileLoader(), file_path)


# botocore parses its models (megabytes of JSON) again for every session, and the app opens one per S3Storage, so
# per test in a bucket: parsed once per test process instead. The models are read, never changed.
JSONFileLoader.load_file = lambda self, file_path: _botocore_model(file_path)  # type: ignore[method-assign]


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


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rgw]:
    cluster = RgwCluster(tmp_path_factory.mktemp("rgw"))
    store = cluster.start()
    try:
        s3_client(store).create_bucket(Bucket=BUCKET)
        yield store
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def s3(rgw: Rgw) -> Any:
    return s3_client(rgw)


@pytest.fixture
def aws_env(rgw: Rgw, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The RGW user's keys where the client library's standard chain looks first; nothing else of the machine's."""
    nowhere = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rgw.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rgw.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def prefix(s3: Any) -> Iterator[str]:
    """A fresh key prefix; whatever a test left under it is removed after (memstore keeps objects in RAM)."""
    made = f"t-{secrets.token_hex(4)}/"
    yield made
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=made).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    for upload in s3.list_multipart_uploads(Bucket=BUCKET, Prefix=made).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])


@pytest.fixture
def storage_mode(request: pytest.FixtureRequest) -> str:
    """`local` unless the test is parametrized over the modes (tests/helpers.py: STORAGE_MATRIX)."""
    mode: str = getattr(request, "param", "local")
    assert mode in ("local", "s3-inline", "s3-redirect"), mode
    return mode


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str, storage_mode: str) -> Settings:
    made = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key=SecretStr(TEST_SECRET),
        max_upload_size=1024 * 1024,
    )
    if storage_mode == "local":
        return made
    rgw: Rgw = request.getfixturevalue("rgw")
    request.getfixturevalue("aws_env")
    key_prefix: str = request.getfixturevalue("prefix")
    delivery = "redirect" if storage_mode == "s3-redirect" else "inline"
    return s3_settings_for(made, rgw, key_prefix, delivery=delivery)


@pytest.fixture
def store(settings: Settings, storage_mode: str) -> Store | None:
    """Where a download may be redirected to (in `s3-redirect` mode), and for how long at most."""
    if storage_mode != "s3-redirect":
        return None
    assert settings.s3_endpoint is not None
    return Store(
        base=f"{str(settings.s3_endpoint).rstrip('/')}/{settings.storage_url.removeprefix('s3://')}",
        redirect_ttl=settings.redirect_ttl,
        grant_ttl=settings.grant_ttl,
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
async def http(app: ASGIApp, store: Store | None) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app; in `s3-redirect` mode it follows a download's redirect to the store, as a browser would,
    and checks both answers on the way (tests/helpers.py: Browser)."""
    if store is None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
        return
    async with Browser(store).client(app=app) as client:
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
