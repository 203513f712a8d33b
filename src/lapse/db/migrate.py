"""Bringing a database's schema up to date with the migrations shipped inside the package."""

from pathlib import Path

from alembic import command
from alembic.config import Config

import lapse.migrations


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(lapse.migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Safe to call from several processes at once (see migrations/env.py). Runs its own event loop, so call
    it from sync code or a worker thread."""
    command.upgrade(alembic_config(database_url), revision)
