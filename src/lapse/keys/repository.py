"""All SQL about API keys."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from lapse.db.base import UTCDateTime
from lapse.db.models import ApiKey

FIRST_KEY_LOCK_ID = 0x1A960
# Run on every API request: also by keys.authenticator, on its raw connection.
ACTIVE_BY_HASH = select(ApiKey).where(ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None))
TOUCH = (
    update(ApiKey)
    .where(ApiKey.id == bindparam("key_id"))
    .values(last_used_at=bindparam("now", type_=UTCDateTime()))
    .execution_options(synchronize_session=False)
)
KEY_COLUMNS = tuple(ApiKey.__table__.columns.keys())


class KeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_active_by_hash(self, key_hash: str) -> ApiKey | None:
        return (await self.session.execute(ACTIVE_BY_HASH, {"key_hash": key_hash})).scalar_one_or_none()

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def list_all(self) -> Sequence[ApiKey]:
        return (await self.session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))).scalars().all()

    async def lock_keys(self) -> None:
        """Serialise check-then-insert on the keys table until this transaction ends. SQLite's BEGIN IMMEDIATE
        already does; PostgreSQL needs an advisory lock."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": FIRST_KEY_LOCK_ID})

    async def count(self) -> int:
        return (await self.session.execute(select(func.count()).select_from(ApiKey))).scalar_one()

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def touch(self, key_id: str, now: datetime) -> None:
        await self.session.execute(TOUCH, {"key_id": key_id, "now": now})

    async def revoke(self, key_id: str, now: datetime) -> None:
        stmt = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
        await self.session.execute(stmt)
