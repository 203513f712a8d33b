"""Where a download lands. The name comes from the server's Content-Disposition, so it is treated as hostile:
only its last path segment is kept, cleaned, and the result is checked to lie inside the target folder."""

from email.message import Message
from pathlib import Path

from lapse.client.errors import UsageError
from lapse.text import clean_filename

FALLBACK_NAME = "download"
# Names we give our own working files; a download called like one would be mistaken for it.
RESERVED_SUFFIXES = (".part", ".lapse-partial.json")


def filename_from_disposition(header: str | None) -> str:
    """`filename*` (RFC 8187) when present and decodable, else `filename` (RFC 6266 §4.3); made safe to create.

    The standard library's MIME parser does the quoting, escapes and RFC 2231/8187 splitting; it hands an
    extended value back as a (charset, language, text) tuple, and does not prefer it, so that is done here.
    """
    message = Message()
    message["Content-Disposition"] = header or "attachment"
    params = message.get_params(header="content-disposition", failobj=[])[1:]
    values = [value for key, value in params if key.lower() == "filename"]
    extended = [_decode(value) for value in values if not isinstance(value, str)]
    plain = [value for value in values if isinstance(value, str)]
    raw = next((name for name in extended if name), None) or next(iter(plain), None)
    name = clean_filename(raw or FALLBACK_NAME)
    if name.endswith(RESERVED_SUFFIXES):
        name += "_"
    return name


def _decode(value: object) -> str | None:
    """An extended value, `(charset, language, text)`, decoded; None if it is not one we can trust."""
    if not (isinstance(value, tuple) and len(value) == 3 and all(isinstance(part, str | None) for part in value)):
        return None
    charset, _, text = value
    if (charset or "").lower() not in ("utf-8", "iso-8859-1"):  # the only two RFC 8187 allows
        return None
    try:
        # The parser percent-decoded into latin-1 code points; these are the raw bytes to decode.
        return str(text.encode("latin-1"), charset)
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, refusing anything that would resolve elsewhere (a symlink named like the file included)."""
    target = folder / name
    if target.resolve().parent != folder.resolve():
        raise UsageError(f"Refusing to write {name!r}: it would land outside {folder}.")
    return target


def choose_target(output: Path | None, *, suggested: str) -> Path:
    """No -o: the current folder, named by the server. -o an existing folder: that folder, named by the server.
    -o anything else: exactly that path, whose folder must exist."""
    if output is None:
        return inside(Path.cwd(), suggested)
    if output.is_dir():
        return inside(output, suggested)
    if not output.parent.is_dir():
        raise UsageError(f"Cannot write {output}: the folder {output.parent} does not exist.")
    return output


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def sidecar_path(target: Path) -> Path:
    return target.with_name(target.name + ".lapse-partial.json")
