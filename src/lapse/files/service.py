"""Files: upload (durable before visible), read, list, delete."""

import logging
import mimetypes
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence

import anyio
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lapse import metrics
from lapse.content_types import OCTET_STREAM, media_type
from lapse.db.base import utc_now
from lapse.db.models import ApiKey, File
from lapse.db.session import transaction
from lapse.errors import NotFound, Unavailable
from lapse.files.repository import FileRepository, IntentRepository, TombstoneRepository
from lapse.storage import Storage, new_key
from lapse.text import clean_filename

logger = logging.getLogger("lapse.files")


def normalise_content_type(declared: str | None, filename: str) -> str:
    """The declared type as a bare `type/subtype`, lower case, or a guess from the name; octet-stream otherwise.

    What is stored is what the uploader said (the owner sees it in listings); what a download carries is decided
    again by lapse.content_types.served_type, which lets only inert types through. Lists such as
    `image/png,text/html` (Jirafeau CVE-2025-7066) and parameters are never stored.
    """
    media = media_type(declared)
    if media is not None and media != OCTET_STREAM:
        return media
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return media_type(guessed) or OCTET_STREAM


def no_such_file() -> NotFound:
    """Also for another owner's file: whether it exists is not the caller's business."""
    return NotFound("No such file.")


def owner_scope(owner: ApiKey) -> str | None:
    return None if owner.is_admin else owner.id


HEARTBEAT_EVERY = 60.0  # seconds between an upload's heartbeats; far below the sweeper's stale age


async def upload(
    session: AsyncSession,
    *,
    sessions: async_sessionmaker[AsyncSession],
    storage: Storage,
    owner: ApiKey,
    filename: str,
    content_type: str | None,
    chunks: AsyncIterable[bytes],
    max_size: int,
) -> File:
    """Durable before visible, and nothing left behind: an intent naming the key is committed (in a short
    transaction of its own) before any byte is stored; the blob is stored whole; then the row is added and the
    intent removed in `session`'s transaction, which the caller commits. A failed or cancelled upload has its storage
    aborted by the backend and its intent removed here, or made a tombstone when the store itself failed (the abort
    may not have reached it either); if the process dies, the sweeper finds the stale intent and aborts what the
    storage holds under its key."""
    name = clean_filename(filename)
    key = new_key()
    async with transaction(sessions) as short:
        await IntentRepository(short).add(key, now=utc_now())
    try:
        blob = await storage.put(key, _heartbeat(chunks, sessions, key), max_size=max_size)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):  # a cancelled request still tidies up
            await _forget_intent(sessions, key, store_failed=isinstance(exc, Unavailable))
        raise
    if not await IntentRepository(session).finish(key):
        # The sweeper took the intent for stale and is removing the blob: this upload cannot become a file.
        with anyio.CancelScope(shield=True):
            await storage.abandon(key)
        raise Unavailable("The upload took too long to be kept; send it again.")
    file = File(
        owner_id=owner.id,
        name=name,
        size=blob.size,
        sha256=blob.sha256,
        content_type=normalise_content_type(content_type, name),
        storage_key=blob.key,
    )
    added = await FileRepository(session).add(file)
    metrics.UPLOADS.inc()
    metrics.UPLOAD_BYTES.inc(blob.size)
    return added


async def _heartbeat(
    chunks: AsyncIterable[bytes], sessions: async_sessionmaker[AsyncSession], key: str
) -> AsyncIterator[bytes]:
    """The body, passed through; while it flows, the intent's heartbeat is bumped at most every HEARTBEAT_EVERY
    seconds (one short write, never one per chunk), so the sweeper leaves a long upload alone."""
    last = time.monotonic()
    async for chunk in chunks:
        if time.monotonic() - last >= HEARTBEAT_EVERY:
            async with transaction(sessions) as short:
                await IntentRepository(short).beat(key, now=utc_now())
            last = time.monotonic()
        yield chunk


async def _forget_intent(sessions: async_sessionmaker[AsyncSession], key: str, *, store_failed: bool) -> None:
    """The intent of an upload whose storage the backend has aborted. When the store failed, the abort may have
    failed as well (or a part, or the whole object, may have landed though its answer was lost): the key becomes a
    tombstone in the same transaction, and the sweeper's next pass removes what it holds. A database that is away
    now leaves the intent to the sweeper, which aborts the key once the intent is stale."""
    try:
        async with transaction(sessions) as short:
            if await IntentRepository(short).finish(key) and store_failed:
                await TombstoneRepository(short).add(key, due_at=utc_now())
    except Exception:
        logger.warning("upload.intent_left storage_key=%s", key, exc_info=True)


async def get_file(session: AsyncSession, *, owner: ApiKey, file_id: str) -> File:
    file = await FileRepository(session).get(file_id, owner_id=owner_scope(owner))
    if file is None:
        raise no_such_file()
    return file


async def get_file_to_link(session: AsyncSession, *, owner: ApiKey, file_id: str) -> File:
    """`get_file` for a link about to be made: the file cannot be swept away before this transaction ends."""
    file = await FileRepository(session).get_to_link(file_id, owner_id=owner_scope(owner))
    if file is None:
        raise no_such_file()
    return file


async def list_files(session: AsyncSession, *, owner: ApiKey, cursor: str | None, limit: int) -> Sequence[File]:
    return await FileRepository(session).page(owner_id=owner_scope(owner), cursor=cursor, limit=limit)


async def delete_file(session: AsyncSession, *, owner: ApiKey, file_id: str) -> str:
    """Delete the row (its links answer 410 from now on) and tombstone its blob in the same transaction; returns
    the storage key, whose bytes the caller removes (`remove_bytes`) once this transaction has committed."""
    file = await get_file(session, owner=owner, file_id=file_id)
    if await FileRepository(session).delete(file.id, now=utc_now()) is None:
        raise no_such_file()  # deleted by someone else since it was read
    return file.storage_key


async def remove_bytes(sessions: async_sessionmaker[AsyncSession], storage: Storage, storage_key: str) -> None:
    """The bytes of a file whose row's deletion (and tombstone) has committed, removed at once, then the tombstone.
    A storage or database that is away now leaves the tombstone, and the sweeper removes the bytes later: the file
    is deleted all the same."""
    try:
        await storage.delete(storage_key)
        async with transaction(sessions) as session:
            await TombstoneRepository(session).remove([storage_key])
    except (Unavailable, SQLAlchemyError):
        logger.warning("file.bytes_left storage_key=%s", storage_key)
