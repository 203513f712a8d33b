"""Configuration: options, then environment, then the saved login; the saved key only for its own server."""

from pathlib import Path

import pytest

from lapse.client import config
from lapse.client.config import Credentials
from lapse.client.errors import UsageError


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "lapse" / "config.json"
    config.save(Credentials(server="https://saved.example", key="lapse_saved"), path)
    return path


def test_options_then_environment_then_the_file(saved: Path) -> None:
    env = {"LAPSE_SERVER": "https://env.example", "LAPSE_API_KEY": "lapse_env"}
    resolved = config.resolve(server="https://opt.example", key="lapse_opt", environ=env, path=saved)
    assert resolved == Credentials(server="https://opt.example", key="lapse_opt")
    assert config.resolve(server=None, key=None, environ=env, path=saved) == Credentials(
        "https://env.example", "lapse_env"
    )
    assert config.resolve(server=None, key=None, environ={}, path=saved) == Credentials(
        "https://saved.example", "lapse_saved"
    )
    assert config.resolve(server="https://saved.example/", key=None, environ={}, path=saved).key == "lapse_saved"


def test_the_saved_key_is_never_sent_to_another_server(saved: Path) -> None:
    with pytest.raises(UsageError, match=r"No API key for https://other\.example"):
        config.resolve(server="https://other.example", key=None, environ={}, path=saved)


def test_nothing_configured(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="No server given"):
        config.resolve(server=None, key=None, environ={}, path=tmp_path / "none.json")


def test_the_file_is_private(saved: Path) -> None:
    assert saved.stat().st_mode & 0o777 == 0o600
    assert saved.parent.stat().st_mode & 0o777 == 0o700
    assert "lapse_saved" not in repr(config.read_saved(saved))
    assert config.forget(saved) == saved
    assert config.forget(saved) is None


def test_the_default_location_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.config_path() == tmp_path / "lapse" / "config.json"


@pytest.mark.parametrize(
    ("given", "server"),
    [
        ("files.example.org", "https://files.example.org"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("https://example.org/lapse/", "https://example.org/lapse"),
    ],
)
def test_server_urls_are_normalised(given: str, server: str) -> None:
    assert config.normalise_server(given) == server


@pytest.mark.parametrize("given", ["ftp://x", "https://u:p@x", "https://x/?a=1", "http://"])
def test_bad_server_urls_are_usage_errors(given: str) -> None:
    with pytest.raises(UsageError):
        config.normalise_server(given)
