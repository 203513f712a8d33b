"""`lapse storage migrate --to s3://bucket/prefix`: move an installation's blobs from its folder to a bucket.

Exit codes: 0 every blob is in the bucket (blobs missing from the folder are reported, not fatal); 2 a bad option or
setting; 3 a store that cannot be reached (nothing lost: run again); 10 some local blobs differ from their recorded
sha256 or cannot be read (reported, not copied); 130 interrupted (run again to resume).
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from lapse.cli.client_common import transfer_progress
from lapse.cli.common import EXIT_INTERRUPTED, EXIT_STORAGE, EXIT_VERIFICATION, err, fail, load_settings, migrate
from lapse.cli.display import human_size

if TYPE_CHECKING:
    from lapse.runtime import Runtime
    from lapse.storage.migration import Blob, Report

storage_app = typer.Typer(help="Where blobs live (server side).", no_args_is_help=True)


@storage_app.command("migrate")
def storage_migrate(
    to: Annotated[
        str,
        typer.Option("--to", metavar="s3://BUCKET/PREFIX", help="The bucket (and key prefix) to copy every blob to."),
    ],
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            metavar="FOLDER",
            help="The blobs folder. Default: LAPSE_STORAGE_URL when it is a folder, else the data dir's blobs.",
            show_default=False,
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Read back the objects already in the bucket and compare their sha256 too (slower: every byte"
            " comes down again); one that differs is copied again.",
        ),
    ] = False,
) -> None:
    """Copy every file's blob to an S3 bucket under the same key, verified by its sha256; a rerun copies only
    what is missing. Then set LAPSE_STORAGE_URL to the same s3:// URL and restart."""
    from lapse.settings import parse_storage_url

    settings = load_settings()
    try:
        where = parse_storage_url(to)
    except ValueError as exc:
        fail(f"--to {exc}")
    if where.scheme != "s3":
        fail(f"--to must name an S3 bucket, s3://bucket/prefix (got {to!r})")
    folder = source or settings.storage.path or settings.data_dir / "blobs"
    if not folder.is_dir():
        fail(f"there is no blobs folder at {folder} (pass --from FOLDER)")
    migrate(settings)
    target_settings = settings.model_copy(update={"storage_url": to})

    async def work(runtime: "Runtime") -> "Report":
        from lapse.errors import Unavailable
        from lapse.storage import LocalStorage, migration, open_storage
        from lapse.storage.s3 import S3Storage

        target = open_storage(target_settings)
        if not isinstance(target, S3Storage):  # the s3:// scheme was checked above
            raise TypeError(target)
        source_storage = LocalStorage(folder)
        try:
            try:
                await target.check()
            except Unavailable as exc:
                raise _Unreachable(f"{to} is not reachable: {exc.__cause__ or exc}") from exc
            count, size = await migration.totals(runtime.sessions)
            with transfer_progress(enabled=err.is_terminal) as progress:
                task = progress.add_task(f"{count} files", total=size)
                try:
                    return await migration.copy_all(
                        runtime.sessions,
                        source_storage,
                        target,
                        on_bytes=lambda n: progress.advance(task, n),
                        verify=verify,
                    )
                except Unavailable as exc:
                    raise _Unreachable(f"the store stopped answering ({exc.__cause__ or exc})") from exc
        finally:
            await target.aclose()
            await source_storage.aclose()

    from lapse.cli.common import run_with_runtime

    try:
        report = run_with_runtime(settings, work)
    except _Unreachable as exc:
        fail(f"{exc}; nothing is lost, run the same command again to resume.", code=EXIT_STORAGE)
    except KeyboardInterrupt:
        fail("Interrupted; run the same command again to resume.", code=EXIT_INTERRUPTED)
    for blob in report.missing:
        err.print(
            f"lapse: {_named(blob)}: its blob {blob.key} is not in {escape(str(folder))}; skipped.", soft_wrap=True
        )
    for blob in report.damaged:
        err.print(
            f"lapse: {_named(blob)}: the local bytes differ from the sha256 recorded at upload; not copied.",
            soft_wrap=True,
        )
    for blob, why in report.unreadable:
        err.print(
            f"lapse: {_named(blob)}: its blob {blob.key} cannot be read ({escape(why)}); not copied.", soft_wrap=True
        )
    if report.replaced:
        what = "object" if report.replaced == 1 else "objects"
        err.print(f"{report.replaced} {what} in the bucket held other bytes than their file's; copied again.")
    unreadable = f", {len(report.unreadable)} unreadable" if report.unreadable else ""
    err.print(
        f"Copied {report.copied} ({human_size(report.copied_bytes)}), skipped {report.skipped} already there, "
        f"{len(report.missing)} missing locally, {len(report.damaged)} damaged{unreadable}.",
        soft_wrap=True,
    )
    if report.damaged or report.unreadable:
        raise typer.Exit(EXIT_VERIFICATION)


class _Unreachable(Exception):
    pass


def _named(blob: "Blob") -> str:
    return f"file {blob.file_id} ({escape(blob.name)})"
