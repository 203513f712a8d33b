"""The `lapse` program: server-side commands (lapse.cli.server) and the client (share, get, files, links, login)."""

import typer

from lapse.cli import server
from lapse.cli.get import get
from lapse.cli.login import login, logout
from lapse.cli.manage import files_app, links_app
from lapse.cli.share import share
from lapse.cli.storage import storage_app

app = typer.Typer(
    help="Lapse: temporary download links.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The server: runs it and manages its database directly.
app.command()(server.serve)
app.add_typer(server.db_app, name="db")
app.add_typer(server.keys_app, name="keys")
app.command()(server.sweep)
app.add_typer(storage_app, name="storage")

# The client: talks to a Lapse server over HTTP (lapse.client), never to the database.
app.command(rich_help_panel="Client")(share)
app.command(rich_help_panel="Client")(get)
app.add_typer(files_app, name="files", rich_help_panel="Client")
app.add_typer(links_app, name="links", rich_help_panel="Client")
app.command(rich_help_panel="Client")(login)
app.command(rich_help_panel="Client")(logout)


def main() -> None:
    app()
