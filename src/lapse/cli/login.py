"""`lapse login URL` and `lapse logout`: keep a server and its API key in the user's config folder."""

import sys
from typing import Annotated

import httpx
import typer

from lapse.cli.client_common import err, reports_errors
from lapse.client import config
from lapse.client.api import LapseClient
from lapse.client.errors import UsageError

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def read_key() -> str:
    """Without echo at a terminal; from the first line of stdin otherwise (`pass lapse | lapse login URL`), so
    that the key never has to be typed on a command line, where other users can read it."""
    if sys.stdin.isatty():
        key: str = typer.prompt("API key", hide_input=True, err=True)
    else:
        key = sys.stdin.readline()
    if not key.strip():
        raise UsageError("No API key given.")
    return key.strip()


@reports_errors
def login(
    server: Annotated[str, typer.Argument(metavar="URL", help="The Lapse server, e.g. https://files.example.org.")],
) -> None:
    """Check an API key against a server and save both for later commands.

    The key is asked for without echo (or read from stdin when it is not a terminal), tried on the server, and
    saved to config.json in your config folder ($XDG_CONFIG_HOME/lapse, default ~/.config/lapse) with mode 0600.
    --server/--key and LAPSE_SERVER/LAPSE_API_KEY still win over it; the saved key is only ever sent to the
    server it was saved for.
    """
    base = config.normalise_server(server)
    if base.startswith("http://") and httpx.URL(base).host not in LOOPBACK:
        err.print("Warning: over http:// the key travels unencrypted; use https:// for a server elsewhere.")
    credentials = config.Credentials(server=base, key=read_key())
    with LapseClient(credentials) as client:
        client.check()
    path = config.save(credentials)
    err.print(f"Logged in to {credentials.server}; the key is saved in {path} (readable by you only).", markup=False)


@reports_errors
def logout() -> None:
    """Forget the saved server and key (the key itself stays valid; an admin revokes keys)."""
    path = config.forget()
    err.print(f"Removed {path}." if path else "Not logged in.", markup=False)
