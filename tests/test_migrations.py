"""Alembic from an empty database to head, on both databases, as `lapse serve` does on first start.

Every other test gets a copy of a template migrated once per worker (tests/databases.py); this one runs the
migrations themselves, so a broken migration fails here even if the template came out right another way.
"""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from lapse.db import models  # noqa: F401 - registers the tables on Base.metadata
from lapse.db.base import Base
from lapse.db.migrate import alembic_config, upgrade
from lapse.db.session import create_engine
from tests.databases import empty_postgres, isolated


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with empty_postgres("migrations") as url:
        yield url


def schema_of(url: str) -> tuple[str | None, list[Any]]:
    """The revision the database is at, and how its schema differs from the models."""

    def inspect(connection: Connection) -> tuple[str | None, list[Any]]:
        context = MigrationContext.configure(connection)
        return context.get_current_revision(), list(compare_metadata(context, Base.metadata))

    async def run() -> tuple[str | None, list[Any]]:
        engine = create_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(inspect)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_migrations_build_the_models_schema_from_nothing(empty_database: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(empty_database)).get_current_head()
    assert head is not None
    revision, missing = schema_of(empty_database)
    assert revision is None  # nothing there yet: every table is missing
    assert {diff[1].name for diff in missing if diff[0] == "add_table"} == set(Base.metadata.tables)
    isolated(lambda: upgrade(empty_database))
    assert schema_of(empty_database) == (head, [])
    isolated(lambda: upgrade(empty_database))  # a second run (the next start) finds nothing to do
    assert schema_of(empty_database) == (head, [])
