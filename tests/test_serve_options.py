"""`lapse serve`'s connection settings: LAPSE_HEADER_TIMEOUT / --header-timeout and LAPSE_MAX_CONNECTIONS /
--max-connections — what a bad value says, and the limits the protocol (lapse.protocol) takes from them."""

import resource
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from lapse.cli import app
from lapse.protocol import limits
from lapse.settings import Settings


@pytest.fixture(autouse=True)
def fresh_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # `serve` writes its options to the environment for its workers: monkeypatch restores it afterwards.
    for name in ("LAPSE_HEADER_TIMEOUT", "LAPSE_MAX_CONNECTIONS"):
        monkeypatch.setenv(name, "")  # recorded: restored (or removed) at teardown
        monkeypatch.delenv(name)
    monkeypatch.setenv("LAPSE_SECRET_KEY", "k" * 40)
    limits.cache_clear()
    yield
    limits.cache_clear()


@pytest.mark.parametrize("value", ["soon", "0s", "-5"])
def test_a_bad_header_timeout_is_named_and_nothing_is_served(value: str) -> None:
    result = CliRunner().invoke(app, ["serve", f"--header-timeout={value}"])
    assert result.exit_code != 0
    assert "LAPSE_HEADER_TIMEOUT" in result.stderr
    assert "Traceback" not in result.stderr


def test_max_connections_must_be_positive() -> None:
    result = CliRunner().invoke(app, ["serve", "--max-connections", "0"])
    assert result.exit_code == 2
    assert "max-connections" in result.stderr


def test_the_protocol_takes_its_limits_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAPSE_HEADER_TIMEOUT", "1m30s")
    monkeypatch.setenv("LAPSE_MAX_CONNECTIONS", "77")
    assert (limits().header_timeout, limits().max_connections) == (90.0, 77)


def test_by_default_connections_get_half_the_descriptors() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limits().max_connections == max(soft // 2, 16)
    assert limits().header_timeout == 10.0
    assert Settings().max_connections is None


def test_settings_refuse_a_zero_cap() -> None:
    with pytest.raises(ValidationError, match="max_connections"):
        Settings(max_connections=0)
