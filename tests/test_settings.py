"""Settings: units, defaults, the generated secret, and one clear line on a bad value."""

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from lapse.settings import Settings, load_or_create_secret
from lapse.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("1h30m", 5400), ("2d", 172800), ("1w", 604800)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "abc", "1x", "1h banana", "-5m"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"), [("10", 10), ("512K", 512 * 1024), ("100MB", 100 * 1024**2), ("2GiB", 2 * 1024**3)]
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'lapse.db'}"
    assert settings.default_ttl == timedelta(hours=1)
    assert settings.grant_ttl == timedelta(hours=1)
    assert settings.file_grace == timedelta(hours=1)


def test_env_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("LAPSE_MAX_UPLOAD_SIZE=5M\nLAPSE_DEFAULT_TTL=10m\n")
    monkeypatch.setenv("LAPSE_DEFAULT_TTL", "20m")
    monkeypatch.setenv("LAPSE_TRUSTED_PROXIES", "10.0.0.0/8, ::1")
    settings = Settings()
    assert settings.max_upload_size == 5 * 1024**2
    assert settings.default_ttl == timedelta(minutes=20)  # the environment beats .env
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "::1/128"]


@pytest.mark.parametrize(
    "env",
    [
        {"LAPSE_DEFAULT_TTL": "banana"},
        {"LAPSE_MAX_UPLOAD_SIZE": "0"},
        {"LAPSE_DEFAULT_TTL": "40d"},
        {"LAPSE_TRUSTED_PROXIES": "not-an-ip"},
        {"LAPSE_PUBLIC_URL": "ftp://x"},
        {"LAPSE_SECRET_KEY": "too-short"},
        {"LAPSE_DELIVERY": "sendfile"},
        {"LAPSE_ACCEL_PREFIX": "/_lapse/blobs"},
        {"LAPSE_ACCEL_PREFIX": "_lapse/blobs/"},
        {"LAPSE_ACCEL_PREFIX": "/"},
        {"LAPSE_ACCEL_PREFIX": "/a b/"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_cli_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "LAPSE_DATA_DIR": str(tmp_path), "LAPSE_GRANT_TTL": "soon"}
    result = subprocess.run(
        [sys.executable, "-m", "lapse", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "lapse: invalid setting LAPSE_GRANT_TTL: not a duration: 'soon' (try 30m, 1h or 2d)"
    ]


def test_cli_reports_a_bad_accel_prefix_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "LAPSE_DATA_DIR": str(tmp_path), "LAPSE_ACCEL_PREFIX": "/_lapse/blobs"}
    result = subprocess.run(
        [sys.executable, "-m", "lapse", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "lapse: invalid setting LAPSE_ACCEL_PREFIX: must be a path that starts and ends with /, like /_lapse/blobs/"
        " (got '/_lapse/blobs')"
    ]


def test_delivery_defaults_to_inline(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert (settings.delivery, settings.accel_prefix) == ("inline", "/_lapse/blobs/")


def test_secret_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: load_or_create_secret(path), range(16)))
    assert len(secrets) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == secrets.pop()
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temp files left behind


def test_settings_secret_prefers_the_configured_one(tmp_path: Path) -> None:
    configured = Settings(_env_file=None, data_dir=tmp_path, secret_key=SecretStr("k" * 40))  # type: ignore[call-arg]
    assert configured.resolved_secret() == b"k" * 40
    assert not (tmp_path / "secret_key").exists()
    generated = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert generated.resolved_secret() == (tmp_path / "secret_key").read_bytes().strip()
