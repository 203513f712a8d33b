"""`lapse files ls|show|rm` and `lapse links ls|show|revoke|extend` against a real server."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import Lapse, write_random

pytestmark = pytest.mark.server


def share(lapse: Lapse, path: Path, *options: str) -> dict[str, Any]:
    [shared] = lapse.json_lines("share", str(path), *options)
    return shared


def test_files_ls_show_rm(lapse: Lapse, tmp_path: Path) -> None:
    first = share(lapse, write_random(tmp_path / "first.txt", 1500))
    second = share(lapse, write_random(tmp_path / "second.txt", 10))

    listed = lapse.json_lines("files", "ls")
    ids = [f["id"] for f in listed]
    assert ids.index(second["id"]) < ids.index(first["id"])  # newest first
    assert {"id", "name", "size", "sha256", "content_type", "created_at"} <= set(listed[0])

    table = lapse.ok("files", "ls").stdout
    assert re.search(rf"{first['id']}\s*│\s*first\.txt\s*│\s*1\.5 KiB\s*│\s*text/plain", table)
    assert len(lapse.json_lines("files", "ls", "--limit", "1")) == 1
    assert "pass --limit to see more" in lapse.ok("files", "ls", "--limit", "1").stderr

    [shown] = lapse.json_lines("files", "show", first["id"])
    assert shown["sha256"] == first["sha256"]
    assert [link["id"] for link in shown["links"]] == [first["link"]["id"]]
    human = lapse.ok("files", "show", first["id"]).stdout
    assert first["sha256"] in human
    assert "0 / ∞" in human

    assert lapse.json_lines("files", "rm", first["id"]) == [{"id": first["id"], "deleted": True}]
    gone = lapse.run("files", "show", first["id"])
    assert (gone.exit_code, gone.stderr) == (4, "lapse: No such file on the server (404).\n")
    dead = lapse.run("get", first["link"]["url"], "-o", str(tmp_path / "x"))
    assert (dead.exit_code, dead.stderr) == (5, "lapse: This link is gone (410): its file was deleted.\n")
    assert lapse.run("files", "rm", first["id"]).exit_code == 4


def test_links_ls_show_extend_revoke(lapse: Lapse, tmp_path: Path) -> None:
    shared = share(lapse, write_random(tmp_path / "doc.pdf", 2048), "--max-downloads", "1", "--expires", "30m")
    file_id, link_id = shared["id"], shared["link"]["id"]

    [listed] = lapse.json_lines("links", "ls", "--file", file_id)
    assert (listed["id"], listed["url"], listed["remaining"]) == (link_id, None, 1)  # the URL is shown once only
    row = next(line for line in lapse.ok("links", "ls").stdout.splitlines() if link_id in line)
    assert re.search(r"doc\.pdf\s*│\s*2\.0 KiB\s*│\s*0 / 1\s*│\s*in (29|30) min\s*│\s*active", row), row

    [shown] = lapse.json_lines("links", "show", link_id)
    assert shown["state"] == "active"
    assert "expires" in lapse.ok("links", "show", link_id).stdout

    [extended] = lapse.json_lines("links", "extend", link_id, "--expires", "2h", "--max-downloads", "5", "--note", "x")
    assert (extended["max_downloads"], extended["note"]) == (5, "x")
    expires_at = datetime.fromisoformat(extended["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(hours=2))) < timedelta(minutes=1)
    when = "2099-01-01T00:00:00+00:00"
    [capped] = lapse.json_lines("links", "extend", link_id, "--unlimited", "--expires", when)
    assert capped["max_downloads"] is None
    assert datetime.fromisoformat(capped["expires_at"]) < datetime(2099, 1, 1, tzinfo=UTC)  # the server's cap
    assert capped["note"] == "x"  # untouched: only what was given is sent

    nothing = lapse.run("links", "extend", link_id)
    assert nothing.exit_code == 2
    assert "Nothing to change" in nothing.stderr
    both = lapse.run("links", "extend", link_id, "--unlimited", "--max-downloads", "3")
    assert both.exit_code == 2

    [revoked] = lapse.json_lines("links", "revoke", link_id)
    assert revoked["state"] == "revoked"
    assert "revoked" in lapse.ok("links", "show", link_id).stdout
    dead = lapse.run("get", shared["link"]["url"], "-o", str(tmp_path / "x"))
    assert (dead.exit_code, dead.stderr) == (5, "lapse: This link is gone (410): it was revoked.\n")
    missing = lapse.run("links", "show", "0" * 20)
    assert (missing.exit_code, missing.stderr) == (4, "lapse: No such link on the server (404).\n")


def test_json_output_is_one_object_per_line_and_nothing_else(lapse: Lapse, tmp_path: Path) -> None:
    paths = [write_random(tmp_path / f"{n}.bin", 100) for n in range(3)]
    result = lapse.ok("share", *map(str, paths), "--json")
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["name"] for o in objects] == ["0.bin", "1.bin", "2.bin"]
    assert all(o["link"]["url"] for o in objects)
    for args in (("files", "ls"), ("links", "ls"), ("links", "show", objects[0]["link"]["id"])):
        for line in lapse.ok(*args, "--json").stdout.splitlines():
            assert isinstance(json.loads(line), dict)
