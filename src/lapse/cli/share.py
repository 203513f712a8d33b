"""`lapse share FILE...`: upload each file (streamed, verified) and mint a link to it."""

import functools
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import segno
import typer

from lapse.cli.client_common import (
    ExpiresOption,
    Expiry,
    JsonOption,
    KeyOption,
    ServerOption,
    connect,
    err,
    reports_errors,
    stdout_is_terminal,
    transfer_progress,
    validated,
)
from lapse.cli.display import human_size, relative
from lapse.client.upload import upload_file
from lapse.files.schemas import FileRead, FileUploaded
from lapse.links.schemas import LinkCreate, LinkRead


def summary(file: FileRead, link: LinkRead) -> str:
    limit = "unlimited downloads" if link.max_downloads is None else f"{link.max_downloads} download(s)"
    extras = ", password" if link.has_password else ""
    return (
        f"{file.name} ({human_size(file.size)}, sha256 verified): expires "
        f"{relative(link.expires_at, datetime.now(UTC))}, {limit}{extras}"
    )


@reports_errors
def share(
    files: Annotated[
        list[Path],
        typer.Argument(help="Files to share; each gets its own link.", exists=True, dir_okay=False, readable=True),
    ],
    expires: ExpiresOption = None,
    max_downloads: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Downloads allowed before the link stops working. Default: unlimited until it expires.",
            show_default=False,
        ),
    ] = None,
    password_prompt: Annotated[
        bool,
        typer.Option(
            "--password-prompt",
            help="Ask (without echo) for a password that downloaders must give; one password for all FILES.",
        ),
    ] = False,
    note: Annotated[
        str | None, typer.Option(metavar="TEXT", help="A note for yourself, shown by `lapse links`.")
    ] = None,
    qr: Annotated[
        bool | None,
        typer.Option(
            "--qr/--no-qr",
            help="Also print each URL as a QR code. Default: when stdout is a terminal; never with --json.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Upload files and print a download link for each.

    Each file is streamed (memory stays flat whatever its size) and checked against the sha256 the server
    computed before its link is made. Stdout gets one URL per line (so `url=$(lapse share f)` works), or with
    --json one object per file: the file's fields and its `link`. Progress and details go to stderr.
    """
    password = (
        typer.prompt("Password for the link", hide_input=True, confirmation_prompt=True) if password_prompt else None
    )
    expiry = expires or Expiry()
    terms = validated(
        LinkCreate,
        expires_in=expiry.seconds,
        expires_at=expiry.at,
        max_downloads=max_downloads,
        password=password,
        note=note,
    )
    show_qr = (stdout_is_terminal() if qr is None else qr) and not as_json
    with connect(server, key) as client:
        for path in files:
            # One bar per file, finished before anything is printed: nothing interleaves with a live display.
            with transfer_progress(enabled=not quiet and err.is_terminal) as progress:
                task = progress.add_task(path.name, total=path.stat().st_size)
                uploaded = upload_file(client, path, on_progress=functools.partial(progress.advance, task))
            link = client.create_link(uploaded.id, terms)
            if as_json:
                typer.echo(FileUploaded(**uploaded.model_dump(), link=link).model_dump_json())
                continue
            err.print(summary(uploaded, link), markup=False)
            typer.echo(link.url)
            if show_qr and link.url:
                segno.make(link.url, error="m").terminal(out=sys.stdout, compact=True)
