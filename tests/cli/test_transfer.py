"""`lapse share` and `lapse get` against a real server: a 50 MB round trip, an interrupted download resumed for
free (a real subprocess, killed), one-time links, passwords."""

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lapse.client.errors import ExitCode
from lapse.client.partial import PartialState
from tests.cli.helpers import Lapse, MiB, lapse_subprocess, moved_to, write_random

pytestmark = pytest.mark.server

BIG = 50 * 1024 * 1024


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def child_env() -> dict[str, str]:
    """A `lapse get` needs no server config or key: none is given, so none can leak into the test."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LAPSE_")}


def wait_for_bytes(part: Path, process: "subprocess.Popen[bytes] | subprocess.Popen[str]", at_least: int) -> None:
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size >= at_least):
        assert process.poll() is None, "the download ended before it could be interrupted"
        assert time.monotonic() < deadline, "no bytes arrived"
        time.sleep(0.02)


def test_share_and_get_50mb_round_trip(lapse: Lapse, tmp_path: Path) -> None:
    source = write_random(tmp_path / "big file.bin", BIG)
    args = ("share", str(source), "--max-downloads", "2", "--expires", "2h", "--note", "round trip")
    [shared] = lapse.json_lines(*args)
    assert (shared["name"], shared["size"], shared["sha256"]) == ("big file.bin", BIG, sha256(source))
    link = shared["link"]
    assert link["url"].startswith(f"{lapse.url}/d/")
    assert (link["max_downloads"], link["downloads"], link["note"], link["state"]) == (2, 0, "round trip", "active")

    into = tmp_path / "downloads"
    into.mkdir()
    record = json.loads(lapse.ok("get", link["url"], "-o", str(into), "--json").stdout)
    saved = into / "big file.bin"
    assert record == {
        "path": str(saved),
        "size": BIG,
        "sha256": shared["sha256"],
        "sha256_verified": True,
        "resumed_from": 0,
        "spent_download": True,
    }
    assert sha256(saved) == shared["sha256"]
    assert sorted(p.name for p in into.iterdir()) == ["big file.bin"]  # no .part, no sidecar left behind
    assert lapse.link(link["id"])["downloads"] == 1


def test_killed_get_resumes_with_its_grant_and_a_third_fresh_get_is_refused(lapse: Lapse, tmp_path: Path) -> None:
    source = write_random(tmp_path / "resume.bin", BIG)
    [shared] = lapse.json_lines("share", str(source), "--max-downloads", "1")
    url, link_id = shared["link"]["url"], shared["link"]["id"]
    into = tmp_path / "first"
    into.mkdir()
    part = into / "resume.bin.part"

    # --limit-rate (a documented option) keeps the transfer slow enough to be cut off part-way.
    first = subprocess.Popen(
        lapse_subprocess("get", url, "-o", str(into), "--limit-rate", "10M"),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_bytes(part, first, 2 * MiB)
    finally:
        first.kill()
        first.wait()
    kept = part.stat().st_size
    assert 0 < kept < BIG
    sidecar = into / "resume.bin.lapse-partial.json"
    assert sidecar.stat().st_mode & 0o777 == 0o600  # it holds the grant
    assert lapse.link(link_id)["downloads"] == 1

    # The resume runs as a process too, with a terminal-like stderr so that the progress bar is drawn.
    second = subprocess.run(
        lapse_subprocess("get", url, "-o", str(into)),
        env=child_env() | {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "0", "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    assert "Resuming resume.bin at" in second.stderr
    assert "no download spent" in second.stderr
    assert "100%" in second.stderr
    assert "MiB" in second.stderr
    assert "Traceback" not in second.stderr
    assert second.stdout.strip() == str(into / "resume.bin")
    assert sha256(into / "resume.bin") == shared["sha256"]
    assert sorted(p.name for p in into.iterdir()) == ["resume.bin"]
    after = lapse.link(link_id)
    assert (after["downloads"], after["state"]) == (1, "exhausted")

    third = tmp_path / "third"
    third.mkdir()
    refused = lapse.run("get", url, "-o", str(third))
    assert refused.exit_code == 5
    assert refused.stderr.strip() == (
        "lapse: This link is gone (410): it is exhausted, every download it allowed has been used."
    )
    assert list(third.iterdir()) == []
    assert lapse.link(link_id)["downloads"] == 1


def test_ctrl_c_stops_in_one_line_and_the_same_command_resumes(lapse: Lapse, tmp_path: Path) -> None:
    source = write_random(tmp_path / "stop.bin", 16 * MiB)
    [shared] = lapse.json_lines("share", str(source), "--max-downloads", "1")
    url = shared["link"]["url"]
    into = tmp_path / "into"
    into.mkdir()
    process = subprocess.Popen(
        lapse_subprocess("get", url, "-o", str(into), "--limit-rate", "4M"),
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_bytes(into / "stop.bin.part", process, MiB)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr.strip() == "lapse: Interrupted; run the same command again to resume."

    resumed = json.loads(lapse.ok("get", url, "-o", str(into), "--json").stdout)
    assert resumed["resumed_from"] > 0
    assert resumed["spent_download"] is False
    assert resumed["sha256"] == shared["sha256"]
    assert lapse.link(shared["link"]["id"])["downloads"] == 1


def test_password_link_asks_and_a_wrong_password_never_counts(lapse: Lapse, tmp_path: Path) -> None:
    source = write_random(tmp_path / "secret.bin", MiB)
    shared = lapse.ok("share", str(source), "--password-prompt", "--json", input="sesame\nsesame\n")
    link = json.loads(shared.stdout.splitlines()[-1])["link"]  # the runner echoes the prompts on stdout
    assert link["has_password"] is True

    into = tmp_path / "into"
    into.mkdir()
    result = lapse.ok("get", link["url"], "-o", str(into), input="wrong\nsesame\n")
    assert "That password was refused." in result.stderr
    assert sha256(into / "secret.bin") == sha256(source)
    assert lapse.link(link["id"])["downloads"] == 1

    refused = lapse.run("get", link["url"], "-o", str(tmp_path / "no.bin"), input="a\nb\nc\n")
    assert refused.exit_code == 3
    # (The runner does not end a hidden prompt's line as a terminal does, hence endswith.)
    assert refused.stderr.endswith("lapse: The link's password was refused.\n")
    assert lapse.link(link["id"])["downloads"] == 1


def test_share_prints_urls_on_stdout_and_a_qr_code_on_request(lapse: Lapse, tmp_path: Path) -> None:
    files = [write_random(tmp_path / name, 1000) for name in ("a.txt", "b.txt")]
    result = lapse.ok("share", *map(str, files), "--qr")
    lines = result.stdout.splitlines()
    urls = [line for line in lines if line.startswith(f"{lapse.url}/d/")]
    assert len(urls) == 2
    assert any("█" in line or "▀" in line for line in lines)  # the QR code, in block characters
    assert "a.txt (1000 B, sha256 verified): expires in 1 h, unlimited downloads" in result.stderr

    plain = lapse.ok("share", str(files[0]), "--expires", "30m")
    assert plain.stdout.startswith(f"{lapse.url}/d/")
    assert len(plain.stdout.splitlines()) == 1  # stdout is not a terminal: no QR code unless asked


def test_get_names_the_file_from_the_server_and_never_overwrites(lapse: Lapse, tmp_path: Path) -> None:
    source = write_random(tmp_path / "report.txt", 100)
    [shared] = lapse.json_lines("share", str(source), "--max-downloads", "5")
    into = tmp_path / "into"
    into.mkdir()
    (into / "report.txt").write_bytes(b"mine")
    refused = lapse.run("get", shared["link"]["url"], "-o", str(into))
    assert refused.exit_code == 2
    assert "already exists; pass --force" in refused.stderr
    assert (into / "report.txt").read_bytes() == b"mine"
    assert lapse.link(shared["link"]["id"])["downloads"] == 0  # refused before anything was spent

    lapse.ok("get", shared["link"]["url"], "-o", str(into), "--force")
    assert (into / "report.txt").read_bytes() == source.read_bytes()
    lapse.ok("get", shared["link"]["url"].replace("/d/", "/s/"), "-o", str(into / "renamed.txt"))
    assert (into / "renamed.txt").read_bytes() == source.read_bytes()


def test_a_download_stopped_after_its_last_byte_finishes_without_asking_again(lapse: Lapse, tmp_path: Path) -> None:
    source = write_random(tmp_path / "whole.bin", 300_000)
    [shared] = lapse.json_lines("share", str(source), "--max-downloads", "1")
    into = tmp_path / "into"
    into.mkdir()
    # What a kill between the last write and the rename leaves: every byte in .part, and the state beside it.
    (into / "whole.bin.part").write_bytes(source.read_bytes())
    state = PartialState(url=shared["link"]["url"], grant="stale", etag=f'"{shared["sha256"]}"', size=300_000)
    state.save(into / "whole.bin")

    record = json.loads(lapse.ok("get", shared["link"]["url"], "-o", str(into), "--json").stdout)
    assert (record["resumed_from"], record["spent_download"], record["sha256_verified"]) == (300_000, False, True)
    assert sorted(p.name for p in into.iterdir()) == ["whole.bin"]
    assert lapse.link(shared["link"]["id"])["downloads"] == 0


def test_damaged_partial_bytes_are_caught_by_the_sha256(lapse: Lapse, tmp_path: Path) -> None:
    source = write_random(tmp_path / "bent.bin", 300_000)
    [shared] = lapse.json_lines("share", str(source), "--max-downloads", "2")
    url = shared["link"]["url"]
    into = tmp_path / "into"
    into.mkdir()
    (into / "bent.bin.part").write_bytes(b"\0" * 1000)  # not the file's first 1000 bytes
    PartialState(url=url, grant="stale", etag=f'"{shared["sha256"]}"', size=300_000).save(into / "bent.bin")

    damaged = lapse.run("get", url, "-o", str(into))
    assert damaged.exit_code == ExitCode.VERIFICATION_FAILED
    assert "bent.bin did not arrive intact" in damaged.stderr
    assert not (into / "bent.bin").exists()
    assert not (into / "bent.bin.part").exists()  # removed; the state with its fresh grant stays

    again = json.loads(lapse.ok("get", url, "-o", str(into), "--json").stdout)
    assert (again["resumed_from"], again["spent_download"]) == (0, False)  # the grant from the first try
    assert sha256(into / "bent.bin") == shared["sha256"]
    assert lapse.link(shared["link"]["id"])["downloads"] == 1


def test_a_link_moved_on_its_own_host_is_followed_and_one_moved_elsewhere_is_not(lapse: Lapse, tmp_path: Path) -> None:
    source = write_random(tmp_path / "moved.bin", 100_000)
    [shared] = lapse.json_lines("share", str(source), "--max-downloads", "2")
    path = "/d/" + shared["link"]["url"].rsplit("/d/", 1)[1]
    into = tmp_path / "into"
    into.mkdir()
    with moved_to(lapse.url) as (moved, asked):  # the same host: as a proxy sending http to https would
        lapse.ok("get", moved + path, "-o", str(into))
    assert (into / "moved.bin").read_bytes() == source.read_bytes()
    assert asked == ["HEAD"]  # the GET went to where the link now is
    assert lapse.link(shared["link"]["id"])["downloads"] == 1

    elsewhere = lapse.url.replace("127.0.0.1", "localhost")  # another host: the grant and password stay here
    with moved_to(elsewhere) as (moved, asked):
        refused = lapse.run("get", moved + path, "-o", str(tmp_path / "not.bin"))
    assert refused.exit_code == ExitCode.FAILED
    assert refused.stderr == "lapse: The server answered 301 Moved Permanently.\n"
    assert asked == ["HEAD"]
    assert lapse.link(shared["link"]["id"])["downloads"] == 1
