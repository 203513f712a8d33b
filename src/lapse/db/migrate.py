"""Bringing a database's schema up to date with the migrations shipped inside the package."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

import lapse.migrations
from lapse.db.session import create_engine


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(lapse.migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Safe to call from several processes at once (see migrations/env.py). Runs its own event loop, so call
    it from sync code or a worker thread."""
    command.upgrade(alembic_config(database_url), revision)
    asyncio.run(analyze(database_url))


async def analyze(database_url: str) -> None:
    """Fresh planner statistics: without them SQLite guesses, and picked a list query's index badly."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
