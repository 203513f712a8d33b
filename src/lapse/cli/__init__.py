"""The `lapse` command: server-side commands (serve, db, keys, sweep) and the client (share, get, files, links,
login, logout)."""

from lapse.cli.main import app, main

__all__ = ["app", "main"]
