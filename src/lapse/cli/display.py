"""How files and links look in a terminal: sizes in binary units, times as "in 3 h 12 min", rich tables."""

from collections.abc import Iterable, Mapping
from datetime import datetime

from rich.markup import escape
from rich.table import Table

from lapse.files.schemas import FileRead
from lapse.links.schemas import LinkRead

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
# Colours say at a glance which links still work.
_STATE_STYLE = {"active": "green", "expired": "yellow", "exhausted": "yellow", "revoked": "red", "file_deleted": "red"}


def human_size(size: int) -> str:
    """1536 → "1.5 KiB": binary units, as LAPSE_MAX_UPLOAD_SIZE and --limit-rate read them."""
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def span(seconds: int) -> str:
    """11520 → "3 h 12 min": the two largest units, which is all a person reads. Past a minute it rounds to the
    minute, so that a link made for a day a second ago reads "1 d", not "23 h 59 min"."""
    seconds = max(seconds, 0)
    if seconds >= 60:
        seconds = round(seconds / 60) * 60
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def relative(moment: datetime, now: datetime) -> str:
    seconds = int((moment - now).total_seconds())
    return f"in {span(seconds)}" if seconds > 0 else f"{span(-seconds)} ago"


def downloads(link: LinkRead) -> str:
    limit = "∞" if link.max_downloads is None else str(link.max_downloads)
    return f"{link.downloads} / {limit}"


def state(link: LinkRead) -> str:
    value = link.state.value
    return f"[{_STATE_STYLE.get(value, 'white')}]{value.replace('_', ' ')}[/]"


def _table(*headers: str) -> Table:
    """Only names, types and notes may wrap: an id or a count cut in two cannot be read or copied."""
    table = Table()
    for header in headers:
        wraps = header in ("name", "file", "type", "note")
        table.add_column(header, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis")
    return table


def files_table(files: Iterable[FileRead], now: datetime) -> Table:
    table = _table("id", "name", "size", "type", "uploaded")
    for file in files:
        table.add_row(
            file.id, escape(file.name), human_size(file.size), escape(file.content_type), relative(file.created_at, now)
        )
    return table


def links_table(links: Iterable[LinkRead], files: Mapping[str, FileRead | None], now: datetime) -> Table:
    """Links with their file's name and size; `files` maps file ids to files (None: deleted or not visible)."""
    table = _table("id", "file", "size", "downloads", "expires", "state", "password", "note")
    for link in links:
        file = files.get(link.file_id) if link.file_id else None
        table.add_row(
            link.id,
            escape(file.name) if file else "[dim](deleted)[/]",
            human_size(file.size) if file else "",
            downloads(link),
            relative(link.expires_at, now),
            state(link),
            "yes" if link.has_password else "",
            escape(link.note or ""),
        )
    return table


def link_details(link: LinkRead, file: FileRead | None, now: datetime) -> Table:
    """One link, one property per row; `file` is its file when it could be read."""
    table = Table.grid(padding=(0, 2))
    rows = {
        "id": link.id,
        "file": f"{escape(file.name)} ({file.id}, {human_size(file.size)})" if file else link.file_id or "(deleted)",
        "state": state(link),
        "downloads": downloads(link),
        "expires": f"{link.expires_at:%Y-%m-%d %H:%M:%S %Z} ({relative(link.expires_at, now)})",
        "password": "yes" if link.has_password else "no",
        "note": escape(link.note or ""),
        "created": f"{link.created_at:%Y-%m-%d %H:%M:%S %Z}",
    }
    if link.revoked_at is not None:
        rows["revoked"] = f"{link.revoked_at:%Y-%m-%d %H:%M:%S %Z}"
    if link.url:
        rows["url"] = link.url
    if link.page_url:
        rows["page"] = f"{link.page_url} (never spends a download: safe to paste where previews fetch links)"
    for name, value in rows.items():
        table.add_row(f"[bold]{name}[/]", value)
    return table


def file_details(file: FileRead, now: datetime) -> Table:
    table = Table.grid(padding=(0, 2))
    for name, value in {
        "id": file.id,
        "name": escape(file.name),
        "size": f"{human_size(file.size)} ({file.size} bytes)",
        "type": escape(file.content_type),
        "sha256": file.sha256,
        "uploaded": f"{file.created_at:%Y-%m-%d %H:%M:%S %Z} ({relative(file.created_at, now)})",
    }.items():
        table.add_row(f"[bold]{name}[/]", value)
    return table
