"""The `lapse` command: server-side commands (serve, db, keys, sweep)."""

from lapse.cli.main import app, main

__all__ = ["app", "main"]
