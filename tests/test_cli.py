"""The server-side CLI: keys, db upgrade, sweep — through Typer's runner, against both databases."""

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lapse.cli import app
from lapse.settings import Settings
from lapse.sweeper import ORPHAN_AGE


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    assert settings.secret_key is not None
    return {
        "LAPSE_DATA_DIR": str(settings.data_dir),
        "LAPSE_DATABASE_URL": settings.database_url,
        "LAPSE_SECRET_KEY": settings.secret_key.get_secret_value(),
    }


def lapse(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_keys_create_list_revoke(cli_env: dict[str, str]) -> None:
    code, out, _ = lapse(cli_env, "keys", "create", "deploy bot", "--admin", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["key"].startswith("lapse_")
    assert created["admin"] is True
    assert created["name"] == "deploy bot"

    code, out, _ = lapse(cli_env, "keys", "list", "--json")
    listed = json.loads(out)
    assert [k["id"] for k in listed] == [created["id"]]
    assert created["key"] not in out

    code, out, _ = lapse(cli_env, "keys", "list")
    assert "deploy bot" in out
    assert created["key"] not in out

    code, _, err = lapse(cli_env, "keys", "revoke", created["id"])
    assert code == 0
    assert "revoked" in err
    assert json.loads(lapse(cli_env, "keys", "list", "--json")[1])[0]["revoked_at"] is not None

    code, _, err = lapse(cli_env, "keys", "revoke", "nope")
    assert code == 1
    assert err.strip() == "lapse: no key with id nope"


def test_db_upgrade_is_idempotent(cli_env: dict[str, str]) -> None:
    for _ in range(2):
        code, _, err = lapse(cli_env, "db", "upgrade")
        assert code == 0
        assert "up to date" in err


def test_unreachable_database_is_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "LAPSE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    code, _, err = lapse(env, "keys", "list")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("lapse: cannot bring the database up to date (127.0.0.1:1/none)")


def test_sweep_removes_stale_temp_files(cli_env: dict[str, str], settings: Settings) -> None:
    shard = settings.data_dir / "blobs" / "ab"
    shard.mkdir(parents=True)
    stale = shard / (".tmp-ab" + "0" * 30)
    stale.write_bytes(b"half an upload")
    # No upload intent names it (left by an older version, say): the safety net's, once past its age.
    long_ago = time.time() - (ORPHAN_AGE + timedelta(hours=1)).total_seconds()
    os.utime(stale, (long_ago, long_ago))
    code, _, err = lapse(cli_env, "sweep")
    assert code == 0
    assert "1 temp files" in err
    assert not stale.exists()


def test_every_command_has_help(cli_env: dict[str, str]) -> None:
    for command in (["serve"], ["db", "upgrade"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"], ["sweep"]):
        code, out, _ = lapse(cli_env, *command, "--help")
        assert code == 0, command
        assert "Usage" in out
    code, out, _ = lapse(cli_env, "--help")
    for name in ("serve", "db", "keys", "sweep"):
        assert name in out


def test_a_fresh_data_dir_is_created(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "there" / "yet"
    env = {"LAPSE_DATA_DIR": str(data_dir), "LAPSE_SECRET_KEY": "f" * 40, "LAPSE_DATABASE_URL": ""}
    code, out, _ = lapse(env, "keys", "create", "first", "--json")
    assert code == 0
    assert json.loads(out)["key"].startswith("lapse_")
    assert (data_dir / "lapse.db").is_file()
