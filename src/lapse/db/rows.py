"""Rows read and written on raw connections (the hot path's sqlite3 and asyncpg), shaped as the ORM shapes them.

links.redeemer, links.minter and keys.authenticator run their statements outside the ORM (see links.redeemer for
why); these keep what they read and write interchangeable with what the ORM reads and writes.
"""

from datetime import UTC, datetime
from typing import Any, TypeVar

from lapse.db.base import UTCDateTime
from lapse.db.models import ApiKey, File, Link

# SQLite hands these back as text; the ORM's UTCDateTime turns them into aware UTC datetimes, and so do we.
_DATETIMES = frozenset(
    c.name for t in (Link, File, ApiKey) for c in t.__table__.columns if isinstance(c.type, UTCDateTime)
)


def sqlite_datetime(moment: datetime) -> str:
    """The text SQLAlchemy's SQLite dialect stores for `UTCDateTime` (naive UTC, microseconds), so that
    comparisons in SQL agree with rows the ORM wrote."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def to_sqlite(value: Any) -> Any:
    """A column value as SQLite stores it: datetimes as `sqlite_datetime` text, the rest as they are."""
    return sqlite_datetime(value) if isinstance(value, datetime) else value


def from_sqlite(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def sqlite_row(columns: tuple[str, ...], values: tuple[Any, ...]) -> dict[str, Any]:
    return {c: from_sqlite(v) if c in _DATETIMES else v for c, v in zip(columns, values, strict=True)}


M = TypeVar("M", Link, File, ApiKey)


def loaded(model: type[M], values: dict[str, Any]) -> M:
    """A model instance holding `values`, made as the ORM makes the objects it loads (`new_instance`, then the
    attribute dict), not through `__init__`: its per-attribute events made two objects cost 30 µs, a tenth of a
    whole small download. The object is transient and only ever read. Needs the mappers configured, which
    `__init__` would have done first: each redeemer does it when it is made (the SQLite authenticator and minter
    share a SqliteRedeemer's threads, so it is made first)."""
    instance: M = model.__mapper__.class_manager.new_instance()
    instance.__dict__.update(values)
    return instance
