"""Each failure a person can meet is one plain sentence on stderr and its own exit code, never a traceback.

A server of its own, with a tiny upload limit and one password attempt, so that 413 and 429 come quickly and
nothing here can throttle the other tests' password links.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lapse.client.errors import ExitCode
from tests.cli.helpers import Lapse, start_server, write_random
from tests.helpers import free_port
from tests.process import LapseServer

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LapseServer]:
    env = {"LAPSE_MAX_UPLOAD_SIZE": "1M", "LAPSE_PASSWORD_ATTEMPTS": "1"}
    yield from start_server(tmp_path_factory.mktemp("cli-strict"), env)


@pytest.fixture(scope="module")
def strict_key(strict_server: LapseServer) -> str:
    return strict_server.create_key("cli-failures")


@pytest.fixture
def strict(strict_server: LapseServer, strict_key: str, tmp_path: Path) -> Lapse:
    return Lapse(strict_server, strict_key, config_home=tmp_path / "config")


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("lapse: ")
    return lines[0]


def test_wrong_key_is_401(strict: Lapse, tmp_path: Path) -> None:
    result = strict.run("files", "ls", LAPSE_API_KEY="lapse_not-a-key")
    assert result.exit_code == ExitCode.UNAUTHORIZED
    assert one_line(result.stderr) == (
        "lapse: The server refused the API key (401); check --key, LAPSE_API_KEY or `lapse login`."
    )
    shared = strict.run("share", str(write_random(tmp_path / "f.bin", 10)), "--key", "lapse_wrong")
    assert shared.exit_code == 3
    assert "lapse_wrong" not in shared.stdout + shared.stderr


def test_connection_refused(strict: Lapse) -> None:
    port = free_port()  # nothing listens there
    result = strict.run("links", "ls", LAPSE_SERVER=f"http://127.0.0.1:{port}")
    assert result.exit_code == ExitCode.CONNECTION_FAILED
    assert one_line(result.stderr) == f"lapse: Could not connect to http://127.0.0.1:{port}: connection refused."
    get = strict.run("get", f"http://127.0.0.1:{port}/d/{'A' * 32}")
    assert (get.exit_code, get.stderr) == (9, result.stderr)


def test_not_found(strict: Lapse, tmp_path: Path) -> None:
    result = strict.run("get", f"{strict.url}/d/{'A' * 32}", "-o", str(tmp_path))
    assert result.exit_code == ExitCode.NOT_FOUND
    assert one_line(result.stderr) == "lapse: No such link on the server (404)."


def test_too_large_is_413_and_nothing_is_kept(strict: Lapse, tmp_path: Path) -> None:
    result = strict.run("share", str(write_random(tmp_path / "big.bin", 2 * 1024 * 1024)))
    assert result.exit_code == ExitCode.TOO_LARGE
    assert one_line(result.stderr).startswith("lapse: The server refused the file as too large (413)")
    assert result.stdout == ""
    assert all(f["name"] != "big.bin" for f in strict.json_lines("files", "ls"))


def test_password_guessing_is_429(strict: Lapse, tmp_path: Path) -> None:
    shared = strict.ok("share", str(write_random(tmp_path / "s.bin", 10)), "--password-prompt", input="pw\npw\n")
    url = shared.stdout.splitlines()[-1]
    result = strict.run("get", url, "-o", str(tmp_path / "s.bin.out"), input="wrong\nwrong\nwrong\n")
    assert result.exit_code == ExitCode.RATE_LIMITED
    assert re.search(r"lapse: Too many attempts \(429\); try again in \d+ s\.$", result.stderr.splitlines()[-1])


def test_missing_bytes_are_503(strict: Lapse, tmp_path: Path) -> None:
    content = b"bytes that will vanish from the server's disk"
    source = tmp_path / "vanish.txt"
    source.write_bytes(content)
    [shared] = strict.json_lines("share", str(source))
    [blob] = [p for p in strict.server.blobs.rglob("*") if p.is_file() and p.read_bytes() == content]
    blob.unlink()
    result = strict.run("get", shared["link"]["url"], "-o", str(tmp_path / "out"))
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert one_line(result.stderr) == "lapse: The server is temporarily unavailable (503); try again in 5 s."
    assert strict.link(shared["link"]["id"])["downloads"] == 0  # fail closed: nothing was counted


def test_usage_errors_are_2(strict: Lapse, tmp_path: Path) -> None:
    assert strict.run("share", str(tmp_path / "missing.bin")).exit_code == 2
    nowhere = strict.run("files", "ls", LAPSE_SERVER=None, LAPSE_API_KEY=None)
    assert nowhere.exit_code == ExitCode.USAGE
    assert one_line(nowhere.stderr).startswith("lapse: No server given")
    bad_url = strict.run("get", "https://example.org/not-a-link")
    assert (bad_url.exit_code, bad_url.stderr) == (
        2,
        "lapse: That is not a Lapse link (expected http(s)://HOST/d/TOKEN).\n",
    )
    zoneless = strict.run("share", __file__, "--expires", "2030-01-01T10:00")
    assert zoneless.exit_code == 2
    assert "give the time zone" in zoneless.stderr
