"""All SQL about files."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    delete,
    exists,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from lapse.db.models import BlobTombstone, File, Link, UploadIntent
from lapse.pagination import page

_OWNER = bindparam("owner_id", type_=String())
# One file by id, scoped to its owner unless the caller is an admin (owner_id None), held (FOR KEY SHARE on
# PostgreSQL) until the transaction ends, so that the sweeper cannot delete it under a link being made: it skips a
# held row, or it held the row first and deletes it, and then this finds nothing. SQLite serialises the two
# transactions whole. Also run by links.minter on its raw connection.
FILE_TO_LINK = (
    select(File)
    .where(File.id == bindparam("file_id"), or_(_OWNER.is_(None), File.owner_id == _OWNER))
    .with_for_update(read=True, key_share=True)
)
FILE_COLUMNS = tuple(File.__table__.columns.keys())


class FileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, file: File) -> File:
        self.session.add(file)
        await self.session.flush()
        return file

    async def get(self, file_id: str, *, owner_id: str | None) -> File | None:
        """owner_id None: any owner's (admin)."""
        return (await self.session.execute(_by_id(file_id, owner_id))).scalar_one_or_none()

    async def get_to_link(self, file_id: str, *, owner_id: str | None) -> File | None:
        """`get`, holding the row until the transaction ends (`FILE_TO_LINK`)."""
        values = {"file_id": file_id, "owner_id": owner_id}
        return (await self.session.execute(FILE_TO_LINK, values)).scalar_one_or_none()

    async def page(self, *, owner_id: str | None, cursor: str | None, limit: int) -> Sequence[File]:
        stmt = page_statement(owner_id=owner_id, cursor=cursor, limit=limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def delete(self, file_id: str, *, now: datetime) -> str | None:
        """Delete the file and tombstone its blob, in this transaction; its storage key, or None when it was gone.
        Links stay, detached and revoked, so their tokens keep answering 410 rather than 404."""
        await self.session.execute(update(Link).where(Link.file_id == file_id).values(file_id=None))
        stmt = delete(File).where(File.id == file_id).returning(File.storage_key)
        key = (await self.session.execute(stmt)).scalar_one_or_none()
        if key is not None:
            await TombstoneRepository(self.session).add(key, due_at=now)
        return key

    async def abandoned_ids(self, *, cutoff: datetime, after: str, limit: int) -> Sequence[str]:
        """Ids (above `after`, in order) of files created before cutoff with no link that was still alive at
        cutoff. Only a candidate list: read it without holding anything, then `hold_abandoned` a few at a time."""
        stmt = (
            select(File.id)
            .where(File.id > after, File.created_at < cutoff, ~exists().where(_alive_link(cutoff)))
            .order_by(File.id)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def hold_abandoned(self, file_ids: Sequence[str], *, cutoff: datetime) -> Sequence[File]:
        """Those of `file_ids` still abandoned, held (FOR UPDATE on PostgreSQL) until the transaction ends; a file
        whose link is being made right now is held by that, and skipped. Delete each with `delete_if_abandoned`,
        which re-checks."""
        stmt = (
            select(File)
            .where(File.id.in_(file_ids), File.created_at < cutoff, ~exists().where(_alive_link(cutoff)))
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def delete_if_abandoned(self, file_id: str, *, cutoff: datetime, now: datetime) -> str | None:
        """Delete the file unless a link alive at cutoff has appeared since `abandoned` read it (one committed
        between that statement's snapshot and its lock): this statement's snapshot, taken while the row is held,
        sees it. Its dead links are detached by the foreign key (ON DELETE SET NULL) and answer 410. Its blob is
        tombstoned in the same transaction; returns its storage key, or None when the file stays."""
        stmt = (
            delete(File)
            .where(File.id == file_id, File.created_at < cutoff, ~exists().where(_alive_link(cutoff)))
            .returning(File.storage_key)
        )
        key = (await self.session.execute(stmt)).scalar_one_or_none()
        if key is not None:
            await TombstoneRepository(self.session).add(key, due_at=now)
        return key


class IntentRepository:
    """Uploads in progress (`UploadIntent`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: str, *, now: datetime) -> None:
        await self.session.execute(insert(UploadIntent).values(storage_key=key, started_at=now, heartbeat_at=now))

    async def beat(self, key: str, *, now: datetime) -> None:
        stmt = update(UploadIntent).where(UploadIntent.storage_key == key).values(heartbeat_at=now)
        await self.session.execute(stmt)

    async def finish(self, key: str) -> bool:
        """Remove the intent of an upload that ended; False when the sweeper had already taken it as stale (its
        storage is being aborted: the upload must not become a file)."""
        stmt = delete(UploadIntent).where(UploadIntent.storage_key == key).returning(UploadIntent.storage_key)
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def take_stale(self, *, before: datetime, now: datetime, limit: int) -> Sequence[str]:
        """Delete up to `limit` intents whose heartbeat is older than `before`, tombstoning their keys in the same
        transaction; their keys. An upload finishing at the same moment either removed its intent first (then it is
        not taken here) or finds it gone (`finish`) and gives up."""
        stale = select(UploadIntent.storage_key).where(UploadIntent.heartbeat_at < before).limit(limit)
        if self.session.get_bind().dialect.name == "postgresql":
            stale = stale.with_for_update(skip_locked=True)  # another replica's pass takes the others
        stmt = (
            delete(UploadIntent)
            .where(UploadIntent.storage_key.in_(stale.scalar_subquery()), UploadIntent.heartbeat_at < before)
            .returning(UploadIntent.storage_key)
        )
        keys = (await self.session.execute(stmt)).scalars().all()
        await TombstoneRepository(self.session).add(*keys, due_at=now)
        return keys


class TombstoneRepository:
    """The delete outbox (`BlobTombstone`): blobs whose rows are gone, until their bytes are."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *keys: str, due_at: datetime) -> None:
        """Tombstone `keys`, in one statement however many."""
        if keys:
            rows = [{"storage_key": key, "due_at": due_at} for key in keys]
            await self.session.execute(insert(BlobTombstone).values(rows))

    async def due(self, *, now: datetime, after: str, limit: int) -> Sequence[str]:
        """Keys (above `after`, in order) of blobs due for removal."""
        stmt = (
            select(BlobTombstone.storage_key)
            .where(BlobTombstone.due_at <= now, BlobTombstone.storage_key > after)
            .order_by(BlobTombstone.storage_key)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def remove(self, keys: Sequence[str]) -> None:
        """Forget blobs whose bytes are gone."""
        if keys:
            await self.session.execute(delete(BlobTombstone).where(BlobTombstone.storage_key.in_(keys)))


async def known_keys(session: AsyncSession, keys: Sequence[str]) -> set[str]:
    """Those of `keys` something still answers for: a file, an upload in progress or a blob being deleted. One
    query per page of a storage listing."""
    if not keys:
        return set()
    stmt = union_all(
        select(File.storage_key).where(File.storage_key.in_(keys)),
        select(UploadIntent.storage_key).where(UploadIntent.storage_key.in_(keys)),
        select(BlobTombstone.storage_key).where(BlobTombstone.storage_key.in_(keys)),
    )
    return set((await session.execute(stmt)).scalars().all())


def page_statement(*, owner_id: str | None, cursor: str | None, limit: int) -> Select[File]:
    """Newest first, after the cursor: a range of one of the (…, created_at, id) indexes (see the models)."""
    stmt = select(File)
    if owner_id is not None:
        stmt = stmt.where(File.owner_id == owner_id)
    return page(stmt, created_at=File.created_at, row_id=File.id, cursor=cursor, limit=limit)


def _by_id(file_id: str, owner_id: str | None) -> Select[File]:
    stmt = select(File).where(File.id == file_id)
    return stmt if owner_id is None else stmt.where(File.owner_id == owner_id)


def _alive_link(cutoff: datetime) -> ColumnElement[bool]:
    """A link of the file (in the enclosing statement) that was still alive at cutoff."""
    return and_(
        Link.file_id == File.id,
        Link.expires_at > cutoff,
        or_(Link.revoked_at.is_(None), Link.revoked_at > cutoff),
        or_(Link.exhausted_at.is_(None), Link.exhausted_at > cutoff),
    )
