"""A real PostgreSQL outage: a private instance of our own is stopped under the running app. Every route answers
503 + Retry-After (problem+json), the paths answered in front of the framework included, and all is well again
once the database is back, with no restart of the app."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from lapse.app import create_app
from lapse.db.migrate import upgrade
from lapse.runtime import open_runtime
from lapse.settings import Settings
from tests.helpers import free_port, new_key

pytestmark = pytest.mark.anyio

PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name))


@dataclass
class PrivatePostgres:
    """One PostgreSQL cluster in a folder of its own, on a free port, trust auth, user `postgres`."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, check: bool = True) -> None:
        # PostgreSQL refuses to run as root: as root, run it as the system's postgres user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0 or not check, f"{command[0]} failed:\n{result.stdout}\n{result.stderr}"

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.folder / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        data, log = str(self.folder / "data"), str(self.folder / "log")
        self._run(str(PG_BIN / "pg_ctl"), "-D", data, "-o", options, "-l", log, "-w", "start")

    def stop(self, *, mode: str = "fast", check: bool = True) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-m", mode, "-w", "stop", check=check)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Not under tmp_path: pytest makes its base folder root-only, and the server runs as `postgres`.
    folder = Path(tempfile.mkdtemp(prefix="lapse-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    instance = PrivatePostgres(folder, free_port())
    try:
        instance.init()
        instance.start()
        yield instance
    finally:
        instance.stop(mode="immediate", check=False)  # whatever state the test left it in
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Running:
    http: httpx.AsyncClient
    auth: dict[str, str]


@pytest.fixture
async def running(private_postgres: PrivatePostgres, tmp_path: Path) -> AsyncIterator[Running]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        database_url=private_postgres.url,
        secret_key=SecretStr("outage-" + "s" * 40),
    )
    await anyio.to_thread.run_sync(upgrade, private_postgres.url)  # Alembic runs an event loop of its own
    async with open_runtime(settings) as runtime:
        key = await new_key(runtime, "outage")
    async with LifespanManager(create_app(settings, sweep=False)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Running(client, {"Authorization": f"Bearer {key}"})


async def _every_kind_of_request(running: Running, file_id: str, download: str) -> list[httpx.Response]:
    http, auth = running.http, running.auth
    return [
        # Minted in front of the framework (api.fast_link).
        await http.post(f"/api/v1/files/{file_id}/links", json={"max_downloads": 5}, headers=auth),
        # The full stack: a password link is left to the route.
        await http.post(f"/api/v1/files/{file_id}/links", json={"password": "pw"}, headers=auth),
        await http.get("/api/v1/files", headers=auth),
        await http.get("/api/v1/links", headers=auth),
        await http.get(download),  # answered in front of the framework (api.fast_download)
        await http.put("/api/v1/files/b.txt", content=b"b", headers=auth),
        await http.post("/api/v1/files", files={"file": ("c.txt", b"c", "text/plain")}, headers=auth),
    ]


async def test_database_outage_is_503_everywhere_and_recovers_without_a_restart(
    running: Running, private_postgres: PrivatePostgres
) -> None:
    uploaded = await running.http.put("/api/v1/files/a.txt", content=b"a", headers=running.auth)
    assert uploaded.status_code == 201, uploaded.text
    file_id = uploaded.json()["id"]
    link = await running.http.post(f"/api/v1/files/{file_id}/links", json={}, headers=running.auth)
    assert link.status_code == 201, link.text
    download = httpx.URL(link.json()["url"]).path

    await anyio.to_thread.run_sync(private_postgres.stop)
    for response in await _every_kind_of_request(running, file_id, download):
        where = f"{response.request.method} {response.request.url.path}"
        assert response.status_code == 503, f"{where}: {response.status_code} {response.text}"
        assert response.headers["retry-after"].isdigit(), where
        assert response.headers["content-type"] == "application/problem+json", where
        assert response.headers["x-content-type-options"] == "nosniff", where
        assert "Traceback" not in response.text

    await anyio.to_thread.run_sync(private_postgres.start)
    statuses = [response.status_code for response in await _every_kind_of_request(running, file_id, download)]
    assert statuses == [201, 201, 200, 200, 200, 201, 201]
