"""Server-side commands: serve, db upgrade, keys, sweep. They talk to the database directly.

The heavy imports (uvicorn, SQLAlchemy, Alembic) live inside the commands, so that the client commands of the
same `lapse` program start in a fraction of the time and memory.
"""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from lapse.cli.common import err, fail, load_settings, migrate, run_with_runtime

if TYPE_CHECKING:
    from lapse.keys.schemas import KeyCreated, KeyRead
    from lapse.runtime import Runtime

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (server side: talks to the database directly).", no_args_is_help=True)
out = Console(highlight=False)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    header_timeout: Annotated[
        str | None,
        typer.Option(
            help="How long a connection may take to send a whole request head, from its start or its last answer"
            " (30s, 1m); then it is closed (408 if it began one). Default: LAPSE_HEADER_TIMEOUT, else 10s.",
            show_default=False,
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Open connections per worker. Past it a new connection closes the one that has waited longest"
            " for a request head, or gets 503 if all are busy. Default: LAPSE_MAX_CONNECTIONS, else half the"
            " process's open-file limit (ulimit -n).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Bring the schema up to date, make a first admin key if there is none, and serve."""
    import uvicorn

    from lapse.db.session import transaction
    from lapse.keys import service as keys_service
    from lapse.protocol import http_protocol

    # Through the environment: the workers read their settings from it (lapse.protocol.limits).
    if header_timeout is not None:
        os.environ["LAPSE_HEADER_TIMEOUT"] = header_timeout
    if max_connections is not None:
        os.environ["LAPSE_MAX_CONNECTIONS"] = str(max_connections)
    settings = load_settings()
    migrate(settings)

    async def first_key(runtime: "Runtime") -> str | None:
        async with transaction(runtime.sessions) as session:
            return await keys_service.create_first_admin(session, secret=runtime.secret)

    if (key := run_with_runtime(settings, first_key)) is not None:
        err.print(f"[bold]First start: created an admin API key. It is shown only this once:[/]\n\n    {key}\n")
    with _shared_metrics(1 if reload else workers):
        uvicorn.run(
            "lapse.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=None if reload else workers,
            reload=reload,
            proxy_headers=False,  # lapse.middleware.ProxyHeadersMiddleware honours LAPSE_TRUSTED_PROXIES instead
            server_header=False,
            ws="none",  # no WebSocket routes: an upgrade is answered as plain HTTP, and no websockets code loads
            http=http_protocol(),  # uvicorn's httptools protocol + head timeout, connection cap, zero-copy sends
            log_level=settings.log_level,
        )


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """Several workers: a fresh folder for their counters (lapse.metrics), named to them through the environment
    they inherit — each scrape reaches one worker, which must report all of them. Removed when serving ends."""
    from lapse.metrics import MULTIPROCESS_DIR

    if workers == 1 or MULTIPROCESS_DIR in os.environ:  # one process counts in memory; an operator's own folder
        yield
        return
    folder = tempfile.mkdtemp(prefix="lapse-metrics-")
    os.environ[MULTIPROCESS_DIR] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_DIR]
        shutil.rmtree(folder, ignore_errors=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration not yet applied."""
    settings = load_settings()
    migrate(settings)
    err.print("Database is up to date.")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    admin: Annotated[bool, typer.Option("--admin", help="May manage keys and see every file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Issue a key. It is printed once; only its hash is kept."""
    from lapse.db.session import transaction
    from lapse.keys import service as keys_service
    from lapse.keys.schemas import KeyCreated

    settings = load_settings()
    migrate(settings)

    async def create(runtime: "Runtime") -> "KeyCreated":
        async with transaction(runtime.sessions) as session:
            key, raw = await keys_service.create_key(session, secret=runtime.secret, name=name, admin=admin)
            return KeyCreated.of(key, raw)

    created = run_with_runtime(settings, create)
    if as_json:
        print(created.model_dump_json())
    else:
        out.print(f"Key [bold]{created.id}[/] ({'admin' if created.admin else 'user'}): {created.key}")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List keys (never the keys themselves)."""
    from lapse.db.session import transaction
    from lapse.keys import service as keys_service
    from lapse.keys.schemas import KeyRead

    settings = load_settings()
    migrate(settings)

    async def read(runtime: "Runtime") -> "list[KeyRead]":
        async with transaction(runtime.sessions) as session:
            return [KeyRead.model_validate(k) for k in await keys_service.list_keys(session)]

    keys = run_with_runtime(settings, read)
    if as_json:
        print(json.dumps([k.model_dump(mode="json") for k in keys]))
        return
    table = Table("id", "name", "admin", "created", "last used", "revoked")
    for k in keys:
        table.add_row(
            k.id,
            k.name,
            "yes" if k.admin else "",
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see `lapse keys list`).")]) -> None:
    """Revoke a key at once."""
    from lapse.db.base import utc_now
    from lapse.db.session import transaction
    from lapse.errors import NotFound
    from lapse.keys import service as keys_service

    settings = load_settings()
    migrate(settings)

    async def revoke(runtime: "Runtime") -> None:
        async with transaction(runtime.sessions) as session:
            await keys_service.revoke_key(session, key_id=key_id, now=utc_now())

    try:
        run_with_runtime(settings, revoke)
    except NotFound:
        fail(f"no key with id {key_id}", code=1)
    err.print(f"Key {key_id} revoked.")


def sweep() -> None:
    """Run one sweeper pass now: abandoned files, dead uploads, the delete outbox, orphan blobs."""
    from lapse.sweeper import sweep_once

    settings = load_settings()
    migrate(settings)

    async def once(runtime: "Runtime") -> str:
        report = await sweep_once(runtime.sessions, runtime.storage, grace=settings.sweep_grace)
        return (
            f"Removed {report.files} files, {report.intents} abandoned uploads, {report.orphans} orphan blobs, "
            f"{report.temp_files} temp files."
        )

    err.print(run_with_runtime(settings, once))
