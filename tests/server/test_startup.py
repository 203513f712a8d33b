"""Starting up: several processes on one fresh database migrate it once and agree on the secret; a bad setting
stops `lapse serve` at once with one readable line."""

import re
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from alembic.script import ScriptDirectory

from lapse.db.migrate import alembic_config
from tests.helpers import free_port
from tests.process import LAPSE, LapseServer, fresh_database, query
from tests.server.api import fresh_client, list_files

pytestmark = [pytest.mark.anyio, pytest.mark.server]

FIRST_KEY = re.compile(r"shown only this once:\s+(lapse_[A-Za-z0-9_-]+)")


@pytest.fixture
def together(kind: str, tmp_path: Path) -> Iterator[list[LapseServer]]:
    """Two `lapse serve --workers 2` on one fresh database and one data folder, with no configured secret,
    launched before either is waited for: their migrations, secret files and first admin keys race."""
    with fresh_database(kind, tmp_path) as url:
        servers = [LapseServer(tmp_path, url, workers=2, name=name, secret_key=None) for name in ("first", "second")]
        try:
            for server in servers:
                server.launch()
            for server in servers:
                server.wait_healthy()
            yield servers
        finally:
            for server in servers:
                server.stop()
                print(server.logs())


async def test_processes_starting_at_once_on_a_fresh_database_migrate_it_once(together: list[LapseServer]) -> None:
    with anyio.fail_after(60):
        for server in together:
            async with fresh_client(server.url) as client:
                for _ in range(8):  # fresh connections, so that both workers are likely asked
                    ready = await client.get("/readyz", headers={"Connection": "close"})
                    assert ready.status_code == 200, ready.text

        url = together[0].database_url
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert await query(url, "SELECT version_num FROM alembic_version") == [(head,)]

        # One first admin key between them, printed once, on whichever console made it; it is an admin's.
        printed = [key for server in together for key in FIRST_KEY.findall(server.stderr_path.read_text())]
        assert len(printed) == 1, printed
        async with fresh_client(together[1].url) as client:
            keys = await client.get("/api/v1/keys", headers={"Authorization": f"Bearer {printed[0]}"})
            assert keys.status_code == 200
            assert [k["name"] for k in keys.json()["items"]] == ["first admin"]

        # They all use one secret: a key the CLI makes with the secret file works on every one of them.
        key = await anyio.to_thread.run_sync(together[0].create_key, "after-start")
        for server in together:
            async with fresh_client(server.url) as client:
                assert await list_files(client, key) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"LAPSE_DEFAULT_TTL": "banana"},
        {"LAPSE_DEFAULT_TTL": "2d", "LAPSE_MAX_TTL": "1d"},  # each fine alone; together inconsistent
    ],
    ids=["not-a-duration", "longer-than-max"],
)
async def test_a_bad_setting_stops_serve_with_one_line(bad: dict[str, str], tmp_path: Path) -> None:
    server = LapseServer(tmp_path, f"sqlite:///{tmp_path / 'lapse.db'}", env=bad)
    command = [LAPSE, "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--workers", "2"]
    started = time.monotonic()
    with anyio.fail_after(15):
        result = await anyio.run_process(command, env=server.environment(), cwd=tmp_path, check=False)
    elapsed = time.monotonic() - started
    stderr = result.stderr.decode()
    assert result.returncode != 0
    assert elapsed < 10, f"took {elapsed:.1f} s to give up"
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "LAPSE_DEFAULT_TTL" in lines[0]
    assert not (tmp_path / "lapse.db").exists(), "it touched the database before checking its settings"


def test_the_first_admin_key_is_printed_on_the_first_start_only(tmp_path: Path) -> None:
    server = LapseServer(tmp_path, f"sqlite:///{tmp_path / 'lapse.db'}", workers=1)
    for _ in range(2):
        server.start()
        server.stop()
    first, second = ((tmp_path / name).read_text() for name in ("lapse.stderr", "lapse.2.stderr"))
    assert len(FIRST_KEY.findall(first)) == 1
    assert "lapse_" not in second
