"""`lapse login` / `lapse logout` and where the client finds its server and key."""

import json
from pathlib import Path

import pytest

from tests.cli.helpers import Lapse

pytestmark = pytest.mark.server


def test_login_checks_the_key_saves_it_0600_and_later_commands_use_it(lapse: Lapse) -> None:
    config = lapse.config_home / "lapse" / "config.json"
    unset = {"LAPSE_SERVER": None, "LAPSE_API_KEY": None}

    refused = lapse.run("login", lapse.url, input="lapse_wrong\n", **unset)
    assert refused.exit_code == 3
    assert not config.exists()

    result = lapse.ok("login", lapse.url + "/", input=f"{lapse.key}\n", **unset)
    assert "Logged in to" in result.stderr
    assert config.stat().st_mode & 0o777 == 0o600
    assert config.parent.stat().st_mode & 0o777 == 0o700
    assert json.loads(config.read_text()) == {"server": lapse.url, "key": lapse.key}

    assert lapse.ok("files", "ls", "--json", **unset).exit_code == 0
    # The saved key belongs to the saved server: pointed elsewhere, the client asks for a key instead of sending it.
    elsewhere = lapse.run("files", "ls", LAPSE_SERVER="http://127.0.0.1:9", LAPSE_API_KEY=None)
    assert elsewhere.exit_code == 2
    assert elsewhere.stderr.startswith("lapse: No API key for http://127.0.0.1:9")
    # Options and environment win over the file.
    assert lapse.run("files", "ls", "--key", "lapse_other", LAPSE_SERVER=None).exit_code == 3
    assert lapse.run("files", "ls", LAPSE_API_KEY="lapse_other", LAPSE_SERVER=None).exit_code == 3

    assert lapse.ok("logout").stderr == f"Removed {config}.\n"
    assert not config.exists()
    assert lapse.run("files", "ls", **unset).exit_code == 2
    assert lapse.ok("logout").stderr == "Not logged in.\n"


def test_a_broken_config_file_is_one_line(lapse: Lapse, tmp_path: Path) -> None:
    config = lapse.config_home / "lapse" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text("{not json")
    result = lapse.run("files", "ls", LAPSE_API_KEY=None)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"lapse: Cannot read {config}")
    assert len(result.stderr.splitlines()) == 1
