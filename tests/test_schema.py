"""The migrations build exactly the schema the models describe, on both databases; OpenAPI lists errors."""

import asyncio

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from lapse.db import models  # noqa: F401 - registers the tables on Base.metadata
from lapse.db.base import Base
from lapse.db.session import create_engine


def test_migrations_match_models(database_url: str) -> None:
    def diff(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async def run() -> list[object]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(diff)
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == []


@pytest.mark.anyio
async def test_openapi_lists_error_statuses(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    download = spec["paths"]["/d/{token}"]["get"]["responses"]
    assert {"200", "206", "304", "401", "404", "410", "412", "416", "429", "503"} <= set(download)
    upload = spec["paths"]["/api/v1/files"]["post"]["responses"]
    assert {"201", "401", "413", "415", "503", "507"} <= set(upload)
    assert "application/problem+json" in upload["413"]["content"]
    assert (await http.get("/docs")).status_code == 200
