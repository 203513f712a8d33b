"""`lapse get URL`: download a link with a progress bar, resuming an interrupted download for free."""

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TaskID

from lapse.cli.client_common import JsonOption, err, fail, parse_rate, reports_errors, transfer_progress
from lapse.cli.display import human_size
from lapse.client.download import Downloaded, Transfer, download
from lapse.client.errors import ExitCode


def ask_password(refused: bool) -> str:
    if refused:
        err.print("That password was refused.")
    password: str = typer.prompt("Password for the link", hide_input=True, err=True)
    return password


def describe_start(transfer: Transfer) -> str | None:
    """A note when this is not a plain fresh download: what was kept, and whether a download was spent."""
    if not transfer.offset:
        return None
    of = f" of {human_size(transfer.size)}" if transfer.size is not None else ""
    cost = (
        "its grant had lapsed, so this spent one download"
        if transfer.spent_download
        else "no download spent, the grant is still good"
    )
    return f"Resuming {transfer.target.name} at {human_size(transfer.offset)}{of} ({cost})."


def as_record(done: Downloaded) -> dict[str, object]:
    return {
        "path": str(done.transfer.target),
        "size": done.size,
        "sha256": done.sha256,
        "sha256_verified": done.sha256_verified,
        "resumed_from": done.transfer.offset,
        "spent_download": done.transfer.spent_download,
    }


@reports_errors
def get(
    url: Annotated[str, typer.Argument(metavar="URL", help="A Lapse link, …/d/TOKEN (its …/s/TOKEN page works too).")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            help="Save as this file, or into this existing folder under the server's name. Default: current folder.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a file that is already there.")] = False,
    limit_rate: Annotated[
        int | None,
        typer.Option(
            "--limit-rate",
            metavar="RATE",
            parser=parse_rate,
            help="Cap the speed in bytes per second: 500K, 2M (K = 1024). Default: as fast as it goes.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Download a link; run it again to resume an interrupted download.

    The first try spends one of the link's downloads and receives a grant. If the transfer stops (Ctrl-C, a
    network drop, a server restart), the bytes so far stay in FILE.part and the grant next to it in
    FILE.lapse-partial.json: the same command resumes from there without spending another download while the
    grant lives (1 h by default). The size, and the sha256 when the server gives it, are checked before the
    file takes its name. Password links ask for the password. The server names the file, safely: never
    outside the folder. Stdout gets the saved path (or, with --json, an object). No API key is needed.
    """
    progress = transfer_progress(enabled=not quiet and err.is_terminal)
    task: TaskID | None = None

    def started(transfer: Transfer) -> None:
        nonlocal task
        if note := describe_start(transfer):
            err.print(note, markup=False)
        progress.start()
        task = progress.add_task(transfer.target.name, total=transfer.size, completed=transfer.offset)

    def advanced(size: int) -> None:
        if task is not None:
            progress.advance(task, size)

    try:
        done = download(
            url,
            output=output,
            ask_password=ask_password,
            on_start=started,
            on_progress=advanced,
            force=force,
            limit_rate=limit_rate,
        )
    except KeyboardInterrupt:
        progress.stop()  # before the message, so that the bar does not draw over it
        fail("Interrupted; run the same command again to resume.", ExitCode.INTERRUPTED)
    finally:
        progress.stop()
    if as_json:
        typer.echo(json.dumps(as_record(done)))
        return
    checked = "sha256 verified" if done.sha256_verified else "size verified; the server gave no sha256"
    err.print(f"Saved {done.transfer.target} ({human_size(done.size)}, {checked}).", markup=False)
    typer.echo(str(done.transfer.target))
