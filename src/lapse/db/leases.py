"""All SQL about leases: a named job that one replica at a time runs, at most once per period."""

from datetime import datetime

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from lapse.db.models import Lease


class LeaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def take(self, name: str, *, holder: str, now: datetime, until: datetime) -> bool:
        """Take the lease `name` for `holder` until `until`, unless someone holds it past `now`: one conditional
        upsert, so of two replicas asking at once exactly one gets it (SQLite serialises writers; PostgreSQL's
        ON CONFLICT re-checks the WHERE on the row it locked)."""
        table = Lease.__table__
        # The same upsert on both: only the dialect's INSERT construct (which carries ON CONFLICT) differs.
        insert = postgresql.insert if self.session.get_bind().dialect.name == "postgresql" else sqlite.insert
        upsert = insert(Lease).values(name=name, holder=holder, until=until)
        stmt: Insert = upsert.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"holder": upsert.excluded.holder, "until": upsert.excluded.until},
            where=table.c.until <= now,
        )
        result = await self.session.execute(stmt)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def holder(self, name: str) -> str | None:
        lease = await self.session.get(Lease, name)
        return None if lease is None else lease.holder
