"""Where the client finds its server and API key.

Each is taken from the first place that has it: `--server` / `--key`, then `LAPSE_SERVER` / `LAPSE_API_KEY`, then
the file `lapse login` wrote (`config.json` in the user's config folder, mode 0600). The file's key is used only
with the server it was saved for, so pointing `LAPSE_SERVER` somewhere else never sends it to another host.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import typer

from lapse.client.atomic import write_private
from lapse.client.errors import UsageError

APP_NAME = "lapse"
CONFIG_NAME = "config.json"
SERVER_ENV = "LAPSE_SERVER"
KEY_ENV = "LAPSE_API_KEY"


@dataclass(frozen=True, slots=True)
class Credentials:
    server: str  # normalised by `normalise_server`
    key: str = field(repr=False)  # never in a repr, so never in a log line or a traceback


def config_path() -> Path:
    """`$XDG_CONFIG_HOME/lapse/config.json` (default `~/.config`) on Linux; the platform's own folder elsewhere."""
    return Path(typer.get_app_dir(APP_NAME)) / CONFIG_NAME


def normalise_server(url: str) -> str:
    """`files.example.org` → `https://files.example.org`; a path prefix is kept, a trailing slash dropped."""
    text = url.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise UsageError(f"Not a server URL: {url!r}.") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"Not a server URL: {url!r} (give http:// or https:// and a host).")
    if parsed.query or parsed.fragment or parsed.userinfo:
        raise UsageError(f"Give the server's base URL only, without credentials, query or fragment: {url!r}.")
    return str(parsed.copy_with(path=parsed.path.rstrip("/") or "/")).rstrip("/")


def read_saved(path: Path) -> Credentials | None:
    """What `lapse login` saved, or None when it never ran."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read {path}: {exc}; run `lapse login URL` again.") from exc
    if not isinstance(saved, dict) or not isinstance(saved.get("server"), str) or not isinstance(saved.get("key"), str):
        raise UsageError(f"{path} is not a Lapse config file; run `lapse login URL` again.")
    return Credentials(server=normalise_server(saved["server"]), key=saved["key"])


def resolve(
    *,
    server: str | None,
    key: str | None,
    environ: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Credentials:
    """The server and key to use, from options, then environment, then the saved login."""
    env = os.environ if environ is None else environ
    saved = read_saved(path or config_path())
    chosen = server or env.get(SERVER_ENV) or (saved.server if saved else None)
    if not chosen:
        raise UsageError(f"No server given: pass --server URL, set {SERVER_ENV}, or run `lapse login URL`.")
    base = normalise_server(chosen)
    api_key = key or env.get(KEY_ENV) or (saved.key if saved and saved.server == base else None)
    if not api_key:
        raise UsageError(f"No API key for {base}: pass --key, set {KEY_ENV}, or run `lapse login {base}`.")
    return Credentials(server=base, key=api_key.strip())


def save(credentials: Credentials, path: Path | None = None) -> Path:
    """Keep the login in the user's config folder (0700), the file itself 0600."""
    target = path or config_path()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(target, json.dumps({"server": credentials.server, "key": credentials.key}, indent=2) + "\n")
    return target


def forget(path: Path | None = None) -> Path | None:
    """Delete the saved login; answers the file removed, or None when there was none."""
    target = path or config_path()
    try:
        target.unlink()
    except FileNotFoundError:
        return None
    return target
