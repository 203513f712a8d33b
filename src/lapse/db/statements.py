"""Statements written once, with SQLAlchemy Core in the repositories, and run two ways: through the ORM session,
and on the download path's raw connections (links.redeemer, keys.authenticator, links.minter), as SQL text
compiled here once per process for sqlite3 and for asyncpg.

Values go in by name. On the raw connections nothing converts them: sqlite3 takes datetimes as `db.rows.to_sqlite`
text, asyncpg takes them as they are.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.sql import ClauseElement

_SQLITE = sqlite.dialect(paramstyle="named")
_ASYNCPG = asyncpg.dialect()  # type: ignore[no-untyped-call]


def for_sqlite(statement: ClauseElement) -> str:
    """Text for sqlite3, with `:name` placeholders."""
    return str(statement.compile(dialect=_SQLITE))


@dataclass(frozen=True, slots=True)
class AsyncpgStatement:
    sql: str  # `$n` placeholders
    names: tuple[str, ...]  # the value each `$n` takes, in order

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


def for_asyncpg(statement: ClauseElement) -> AsyncpgStatement:
    compiled = statement.compile(dialect=_ASYNCPG)
    names: list[str] = getattr(compiled, "positiontup", None) or []  # SQLCompiler's: the names in `$n` order
    return AsyncpgStatement(sql=str(compiled), names=tuple(names))
