"""The docs stand on their own: every setting documented, every link inside the repository and alive, a short
README. Docs drift silently; these checks make the drift a failing test instead."""

import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lapse.cli.server import serve
from lapse.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README_LIMIT = 12_000  # bytes: what a newcomer reads first; the rest belongs in docs/

# Markdown links and images, `[text](target)` or `![alt](target "title")`, and HTML `src=`/`href=`.
_MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""")
# A relative path that climbs out of its folder, mentioned anywhere (in backticks, say), not only as a link.
_CLIMBING_PATH = re.compile(r"(?<![\w./-])((?:\.\./)+[\w.-][\w./-]*)")
_SCHEMES = ("http://", "https://", "mailto:")
# A settings table row: its first cell names the variable.
_SETTING_ROW = re.compile(r"^\|\s*`(LAPSE_[A-Z0-9_]+)`\s*\|", re.MULTILINE)


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", root / "CONTRIBUTING.md", *sorted((root / "docs").glob("**/*.md"))]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", markdown.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", text, re.MULTILINE)}


def _targets(text: str) -> Iterator[str]:
    yield from (m.group(1) for m in _MARKDOWN_LINK.finditer(text))
    yield from (m.group(1) for m in _HTML_LINK.finditer(text))


def broken_links(document: Path, root: Path = ROOT) -> list[str]:
    """What in `document` points outside `root`, at a file that does not exist, or at a missing heading."""
    text = document.read_text(encoding="utf-8")
    problems = []
    for target in _targets(text):
        if target.startswith(_SCHEMES):
            continue
        path, _, anchor = target.partition("#")
        if path.startswith("/") or re.match(r"^[a-z][a-z0-9+.-]*:", path):
            problems.append(f"{target}: not a path inside the repository")
            continue
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.is_relative_to(root):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"{target}: no heading #{anchor} in {resolved.relative_to(root)}")
    for mention in _CLIMBING_PATH.findall(text):
        resolved = (document.parent / mention).resolve()
        if not resolved.is_relative_to(root) or not resolved.exists():
            problems.append(f"{mention}: a path outside the repository or that does not exist")
    return problems


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_links_stay_inside_the_repository_and_resolve(document: Path) -> None:
    assert broken_links(document) == []


def test_the_link_check_catches_what_it_should(tmp_path: Path) -> None:
    """The check above is only worth something if it fails: each kind of bad link, and the good ones pass."""
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "here.md").write_text("# Here\n\n## Delivery: inline or accel\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "OUTSIDE.md").write_text("# Outside\n")
    page = repo / "README.md"
    page.write_text(
        "[ok](docs/here.md) [ok](docs/here.md#delivery-inline-or-accel) [web](https://example.org/x)\n"
        '<img src="docs/here.md">\n'
        "[a](../elsewhere/OUTSIDE.md) [b](docs/missing.md) [c](/etc/passwd) [d](docs/here.md#nowhere)\n"
        '<img src="docs/screenshots/gone.png"> and, in prose, `../elsewhere/OUTSIDE.md`\n'
    )
    assert broken_links(page, root=repo) == [
        "../elsewhere/OUTSIDE.md: outside the repository",
        "docs/missing.md: no such file",
        "/etc/passwd: not a path inside the repository",
        "docs/here.md#nowhere: no heading #nowhere in docs/here.md",
        "docs/screenshots/gone.png: no such file",
        "../elsewhere/OUTSIDE.md: a path outside the repository or that does not exist",
        "../elsewhere/OUTSIDE.md: a path outside the repository or that does not exist",
    ]


def _documented_settings() -> set[str]:
    return set(_SETTING_ROW.findall((ROOT / "docs" / "settings.md").read_text(encoding="utf-8")))


def test_every_setting_is_documented() -> None:
    wanted = {f"LAPSE_{name.upper()}" for name in Settings.model_fields}
    assert wanted - _documented_settings() == set()


def test_every_documented_variable_exists() -> None:
    """A row for a variable nothing reads (renamed, removed) misleads: each is a setting or read by name."""
    fields = {f"LAPSE_{name.upper()}" for name in Settings.model_fields}
    code = "\n".join(p.read_text(encoding="utf-8") for d in ("src", "tests") for p in (ROOT / d).glob("**/*.py"))
    unknown = {name for name in _documented_settings() - fields if not re.search(rf'"{name}"', code)}
    assert unknown == set()


def test_every_option_of_lapse_serve_is_documented() -> None:
    text = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    options = {f"--{name.replace('_', '-')}" for name in inspect.signature(serve).parameters}  # as Typer spells them
    assert {option for option in options if f"`{option}`" not in text} == set()


def test_readme_is_short() -> None:
    assert (ROOT / "README.md").stat().st_size < README_LIMIT
