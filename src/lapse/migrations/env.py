"""Alembic environment: async engines, and a lock so that several processes starting at once migrate once."""

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection

from lapse.db import models  # noqa: F401 - registers the tables on Base.metadata
from lapse.db.base import Base
from lapse.db.session import create_engine

MIGRATION_LOCK_ID = 0x1A95F


def _migrate(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Held until the connection closes; a second process waits here, then finds the schema current.
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    # On SQLite our engine opens every transaction with BEGIN IMMEDIATE, which serialises migrators the same way.
    with context.begin_transaction():
        context.run_migrations()


async def _run() -> None:
    url = context.config.attributes.get("database_url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to Alembic")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Lapse migrations run online only: `lapse db upgrade`.")
asyncio.run(_run())
