"""Where `lapse get` writes: the server's suggested name is hostile input until cleaned."""

from pathlib import Path

import pytest

from lapse.client.download import link_url
from lapse.client.errors import UsageError
from lapse.client.naming import choose_target, filename_from_disposition, inside


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("attachment; filename=\"report.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
        ('attachment; filename="plain.txt"', "plain.txt"),
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
        ('attachment; filename="../../.bashrc"', "bashrc"),
        ('attachment; filename="C:\\\\Windows\\\\evil.exe"', "evil.exe"),
        ("attachment; filename*=UTF-8''a%0Ab%1B%5B31mc.txt", "ab[31mc.txt"),
        ("attachment; filename*=UTF-8''%E2%80%AEtxt.exe", "txt.exe"),  # no bidi override
        ('attachment; filename=".."', "download"),
        ('attachment; filename="/"', "download"),
        ("attachment", "download"),
        (None, "download"),
        ("attachment; filename*=nonsense''%FF%FE", "download"),
        ('attachment; filename="x.part"', "x.part_"),
        ('attachment; filename="x.lapse-partial.json"', "x.lapse-partial.json_"),
    ],
)
def test_names_from_content_disposition_are_safe(header: str | None, name: str) -> None:
    assert filename_from_disposition(header) == name


def test_a_symlink_named_like_the_file_cannot_redirect_the_write(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "file.txt").symlink_to(tmp_path / "elsewhere.txt")
    with pytest.raises(UsageError, match="outside"):
        inside(folder, "file.txt")
    assert inside(folder, "other.txt") == folder / "other.txt"


def test_output_is_a_folder_or_a_file_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert choose_target(None, suggested="a.txt") == tmp_path / "a.txt"
    assert choose_target(tmp_path, suggested="a.txt") == tmp_path / "a.txt"
    assert choose_target(tmp_path / "b.bin", suggested="a.txt") == tmp_path / "b.bin"
    with pytest.raises(UsageError, match="does not exist"):
        choose_target(tmp_path / "no" / "b.bin", suggested="a.txt")


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://h:8/d/" + "A" * 32, "http://h:8/d/" + "A" * 32),
        ("https://h/s/" + "a-_" * 8 + "/", "https://h/d/" + "a-_" * 8),
        ("https://h/prefix/d/" + "A" * 32 + "?utm=1#x", "https://h/prefix/d/" + "A" * 32),
    ],
)
def test_link_urls_are_normalised(given: str, url: str) -> None:
    assert link_url(given) == url


@pytest.mark.parametrize("given", ["ftp://h/d/" + "A" * 32, "https://h/x/" + "A" * 32, "https://h/d/short", "nonsense"])
def test_other_urls_are_refused(given: str) -> None:
    with pytest.raises(UsageError):
        link_url(given)
