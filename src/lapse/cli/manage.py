"""`lapse files ls|show|rm` and `lapse links ls|show|revoke|extend`: readable tables, or --json lines."""

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from itertools import islice
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel
from rich.table import Table

from lapse.cli.client_common import (
    JsonOption,
    KeyOption,
    NewExpiryOption,
    ServerOption,
    connect,
    err,
    reports_errors,
    show,
    validated,
)
from lapse.cli.display import file_details, files_table, link_details, links_table
from lapse.client.api import LapseClient
from lapse.client.errors import NotFound, UsageError
from lapse.files.schemas import FileRead
from lapse.links.schemas import LinkUpdate

T = TypeVar("T")

files_app = typer.Typer(help="Your uploaded files: list, inspect, delete.", no_args_is_help=True)
links_app = typer.Typer(help="Your links: list, inspect, revoke, extend.", no_args_is_help=True)

LimitOption = Annotated[int, typer.Option("--limit", min=1, metavar="N", help="Show at most N, newest first.")]
FileIdArgument = Annotated[str, typer.Argument(metavar="FILE_ID", help="A file's id (see `lapse files ls`).")]
LinkIdArgument = Annotated[str, typer.Argument(metavar="LINK_ID", help="A link's id (see `lapse links ls`).")]


def emit_json(*items: BaseModel | dict[str, object]) -> None:
    """One JSON object per line: easy for `jq`, and for a loop reading lines."""
    for item in items:
        typer.echo(item.model_dump_json() if isinstance(item, BaseModel) else json.dumps(item))


def show_listing(items: Sequence[BaseModel], *, as_json: bool, table: Callable[[], Table], nothing: str) -> None:
    """`ls` output: JSON lines, or the table (built only when it is shown), or a note on stderr that there is
    nothing to list."""
    if as_json:
        emit_json(*items)
    elif items:
        show(table())
    else:
        err.print(nothing)


def newest(items: Iterator[T], limit: int, what: str) -> list[T]:
    """The first `limit` items; a note on stderr when there were more (one extra is fetched to know)."""
    page = list(islice(items, limit + 1))
    if len(page) > limit:
        err.print(f"Showing the newest {limit} {what}; pass --limit to see more.")
    return page[:limit]


def files_by_id(client: LapseClient, file_ids: Iterable[str | None]) -> dict[str, FileRead | None]:
    """Each distinct file once; None for a file that is gone (its links stay listed, marked deleted)."""
    found: dict[str, FileRead | None] = {}
    for file_id in {i for i in file_ids if i}:
        found[file_id] = None
        with suppress(NotFound):
            found[file_id] = client.file(file_id)
    return found


@files_app.command("ls")
@reports_errors
def files_ls(
    limit: LimitOption = 50, as_json: JsonOption = False, server: ServerOption = None, key: KeyOption = None
) -> None:
    """List your files, newest first."""
    with connect(server, key) as client:
        files = newest(client.files(), limit, "files")
    show_listing(files, as_json=as_json, table=lambda: files_table(files, datetime.now(UTC)), nothing="No files.")


@files_app.command("show")
@reports_errors
def files_show(
    file_id: FileIdArgument, as_json: JsonOption = False, server: ServerOption = None, key: KeyOption = None
) -> None:
    """Show one file and its links."""
    with connect(server, key) as client:
        file = client.file(file_id)
        links = list(client.links(file_id=file_id))
    if as_json:
        emit_json(file.model_dump(mode="json") | {"links": [link.model_dump(mode="json") for link in links]})
        return
    now = datetime.now(UTC)
    show(file_details(file, now))
    show(links_table(links, {file.id: file}, now) if links else "No links.")


@files_app.command("rm")
@reports_errors
def files_rm(
    file_ids: Annotated[list[str], typer.Argument(metavar="FILE_ID...", help="Ids of the files to delete.")],
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Delete files at once: their bytes go and every link to them stops working (410)."""
    with connect(server, key) as client:
        for file_id in file_ids:
            client.delete_file(file_id)
            if as_json:
                emit_json({"id": file_id, "deleted": True})
            else:
                err.print(f"Deleted file {file_id}; its links no longer work.", markup=False)


@links_app.command("ls")
@reports_errors
def links_ls(
    file_id: Annotated[
        str | None, typer.Option("--file", metavar="FILE_ID", help="Only the links to this file.")
    ] = None,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """List your links, newest first: downloads used of the limit, time left, state."""
    with connect(server, key) as client:
        links = newest(client.links(file_id=file_id), limit, "links")
        files = {} if as_json else files_by_id(client, (link.file_id for link in links))
    show_listing(
        links, as_json=as_json, table=lambda: links_table(links, files, datetime.now(UTC)), nothing="No links."
    )


@links_app.command("show")
@reports_errors
def links_show(
    link_id: LinkIdArgument, as_json: JsonOption = False, server: ServerOption = None, key: KeyOption = None
) -> None:
    """Show one link: state, downloads used of the limit, expiry. (Its URL was shown only when it was made.)"""
    with connect(server, key) as client:
        link = client.link(link_id)
        file = None if as_json else files_by_id(client, [link.file_id]).get(link.file_id or "")
    if as_json:
        emit_json(link)
    else:
        show(link_details(link, file, datetime.now(UTC)))


@links_app.command("revoke")
@reports_errors
def links_revoke(
    link_ids: Annotated[list[str], typer.Argument(metavar="LINK_ID...", help="Ids of the links to revoke.")],
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Revoke links at once: the next request answers 410, and unfinished downloads cannot resume."""
    with connect(server, key) as client:
        for link_id in link_ids:
            link = client.revoke_link(link_id)
            if as_json:
                emit_json(link)
            else:
                err.print(f"Revoked link {link.id}.", markup=False)


@links_app.command("extend")
@reports_errors
def links_extend(
    link_id: LinkIdArgument,
    expires: NewExpiryOption = None,
    max_downloads: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="N", help="New download limit, counting the downloads already made.", show_default=False
        ),
    ] = None,
    unlimited: Annotated[bool, typer.Option("--unlimited", help="Remove the download limit.")] = False,
    note: Annotated[str | None, typer.Option(metavar="TEXT", help="Replace the note.")] = None,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Change a live link: a new expiry (from now, or a time), a new download limit, or a new note.

    The server caps the expiry at its maximum. A revoked link cannot be brought back.
    """
    if max_downloads is not None and unlimited:
        raise UsageError("Give --max-downloads or --unlimited, not both.")
    changes: dict[str, object] = {}
    if expires is not None:
        changes |= {"expires_in": expires.seconds} if expires.seconds else {"expires_at": expires.at}
    if max_downloads is not None or unlimited:
        changes["max_downloads"] = max_downloads  # None, sent explicitly, means unlimited
    if note is not None:
        changes["note"] = note
    if not changes:
        raise UsageError("Nothing to change: give --expires, --max-downloads, --unlimited or --note.")
    update = validated(LinkUpdate, **changes)
    with connect(server, key) as client:
        link = client.update_link(link_id, update)
        file = None if as_json else files_by_id(client, [link.file_id]).get(link.file_id or "")
    if as_json:
        emit_json(link)
    else:
        show(link_details(link, file, datetime.now(UTC)))
