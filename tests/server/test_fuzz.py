"""Schemathesis against a live `lapse serve`, driven by /openapi.json: every check (server errors, responses that
do not match the schema, statuses and headers the schema does not list, ignored authentication, 405s and their
Allow, use after delete), stateful sequences included. Once with an admin key and once with a plain one;
deterministic and bounded, so that CI runs it every time.

What the config below accepts is only what OpenAPI cannot say, each with its reason."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.process import LapseServer, fresh_database
from tests.server.services import Service, serving

pytestmark = pytest.mark.server

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
MAX_EXAMPLES = 8  # per operation and phase: about 40 s a run, the stateful phase included, on two busy cores
CONFIG = """
[auth.openapi.bearer]
bearer = "{key}"

[checks.positive_data_acceptance]
# A request the schema allows may still break a rule that depends on the time or on the server's state: an expiry
# already past, a cursor this server never issued (400), a link that has died (410).
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "410", "429"]

[[operations]]
# OpenAPI cannot say "expires_in or expires_at, not both" of query parameters (the JSON bodies say it with `not`).
include-path = "/api/v1/files/{{file_id}}"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "410", "422", "429"]
"""


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """A server of its own (the fuzzer fills it with junk), its admin key and a plain key."""
    root = tmp_path_factory.mktemp("fuzz")
    with fresh_database("sqlite", root) as url:
        server = LapseServer(root, url, workers=2)
        admin = server.create_key("fuzz-admin", admin=True)
        plain = server.create_key("fuzz-plain")
        with serving(server):
            yield Service(server, admin), plain


def _schemathesis(url: str, key: str, folder: Path) -> subprocess.CompletedProcess[str]:
    folder.mkdir()
    config = folder / "schemathesis.toml"
    config.write_text(CONFIG.format(key=key))
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        # DELETE on a link revokes it: the link stays readable, with `state: revoked`, by design (its owner sees why
        # it stopped working). The config's switches do not reach the stateful phase in schemathesis 4.32, so this
        # check is off for all; a deleted file answering 404 is tested in tests/api.
        "--exclude-checks",
        "use_after_free",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20261203",
        "--generation-deterministic",
        "--workers",
        "1",
        "--no-shrink",
        # The downloads are left out: POST /d/{token} answers 405 by design on a link minted with
        # `"password": null`, which the acceptance check reads as a valid request refused, and the per-operation
        # switches that would say so do not reach the stateful phase in schemathesis 4.32. tests/api covers them.
        "--exclude-path-regex",
        "^/d/",
    ]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("who", ["admin", "plain"])
def test_schemathesis_finds_nothing(fuzzed: tuple[Service, str], who: str, tmp_path: Path) -> None:
    running, plain = fuzzed
    key = running.key if who == "admin" else plain
    result = _schemathesis(running.url, key, tmp_path / who)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "API Operations:" in output, output
    # Every operation in the schema but the three downloads was tested, in every phase, the stateful one included.
    selected, total = output.split("Selected:", 1)[1].split()[0].split("/")
    tested = output.split("Tested:", 1)[1].split()[0]
    assert selected == tested == str(int(total) - 3), output
    assert "✅ Stateful" in output, output
