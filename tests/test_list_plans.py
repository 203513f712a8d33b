"""Every listing reads an index range in its own order, on both databases: no sort of the whole table, and the
cursor a bound of the range (so a page costs the same at a thousand rows or a million)."""

import sqlite3
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

from lapse.db.base import utc_now
from lapse.db.rows import to_sqlite
from lapse.files.repository import page_statement as files_page
from lapse.links.repository import page_statement as links_page
from lapse.pagination import encode_cursor
from lapse.settings import Settings

CURSOR = encode_cursor(utc_now(), "f" * 32)
OWNER, FILE = "a" * 32, "b" * 32

LISTS: dict[str, tuple[Select[Any], str]] = {
    "links, admin": (links_page(owner_id=None, file_id=None, cursor=CURSOR, limit=50), "ix_links_created_at_id"),
    "links, owner": (
        links_page(owner_id=OWNER, file_id=None, cursor=CURSOR, limit=50),
        "ix_links_owner_id_created_at_id",
    ),
    "links, file": (links_page(owner_id=None, file_id=FILE, cursor=CURSOR, limit=50), "ix_links_file_id_created_at_id"),
    "links, first page": (
        links_page(owner_id=OWNER, file_id=None, cursor=None, limit=50),
        "ix_links_owner_id_created_at_id",
    ),
    "files, admin": (files_page(owner_id=None, cursor=CURSOR, limit=50), "ix_files_created_at_id"),
    "files, owner": (files_page(owner_id=OWNER, cursor=CURSOR, limit=50), "ix_files_owner_id_created_at_id"),
}


def sqlite_plan(path: str, statement: Select[Any]) -> str:
    compiled = statement.compile(dialect=sqlite.dialect(paramstyle="named"))
    params = {name: to_sqlite(value) for name, value in compiled.params.items()}
    with sqlite3.connect(path) as connection:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {compiled}", params).fetchall()
    return "\n".join(str(row[-1]) for row in rows)


async def postgres_plan(url: str, statement: Select[Any]) -> str:
    compiled = statement.compile(dialect=pg_asyncpg.dialect())  # type: ignore[no-untyped-call]
    names: list[str] = getattr(compiled, "positiontup", None) or []
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        # The tables here are tiny, where a scan and a sort would be cheaper: ask whether the index can serve.
        await connection.execute("SET enable_seqscan = off; SET enable_sort = off; SET enable_bitmapscan = off")
        rows = await connection.fetch(f"EXPLAIN {compiled}", *[compiled.params[n] for n in names])
    finally:
        await connection.close()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("listing", LISTS)
@pytest.mark.anyio
async def test_each_list_is_an_index_range(settings: Settings, listing: str) -> None:
    statement, index = LISTS[listing]
    url = settings.database_url
    if url.startswith("sqlite"):
        plan = sqlite_plan(url.removeprefix("sqlite:///"), statement)
        assert f"USING INDEX {index}" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # no sort
        if "first page" not in listing:
            assert "(created_at,id)<(?,?)" in plan, plan  # the cursor bounds the range
    else:
        plan = await postgres_plan(url, statement)
        # On tables this small, PostgreSQL may take the table's (created_at, id) index and filter the owner out,
        # as cheap as the owner's own index here; either is a range in the listing's order.
        table = index.split("_")[1]
        assert any(f"Index Scan Backward using {name}" in plan for name in (index, f"ix_{table}_created_at_id")), plan
        assert "Sort" not in plan, plan
        if "first page" not in listing:
            assert "ROW(created_at, (id)::text) < ROW(" in plan.split("Index Cond:")[1], plan
