"""Files: upload (durable before visible), read, list, delete."""

import logging
import mimetypes
from collections.abc import AsyncIterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from lapse import metrics
from lapse.content_types import OCTET_STREAM, media_type
from lapse.db.models import ApiKey, File
from lapse.errors import NotFound, Unavailable
from lapse.files.repository import FileRepository
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


async def upload(
    session: AsyncSession,
    *,
    storage: Storage,
    owner: ApiKey,
    filename: str,
    content_type: str | None,
    chunks: AsyncIterable[bytes],
    max_size: int,
) -> File:
    """Stream to storage (fsynced and renamed into place), then add the row: a crash leaves only an orphan blob."""
    name = clean_filename(filename)
    blob = await storage.put(new_key(), chunks, max_size=max_size)
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
    """Delete the row (its links answer 410 from now on); returns the storage key, whose bytes the caller
    removes once this transaction has committed — row first, then bytes."""
    file = await get_file(session, owner=owner, file_id=file_id)
    await FileRepository(session).delete(file.id)
    return file.storage_key


async def remove_bytes(storage: Storage, storage_key: str) -> None:
    """The bytes of a file whose row's deletion has committed. A storage that is away now leaves them as an orphan
    blob, which the sweeper removes later: the file is deleted all the same, and the caller is told so."""
    try:
        await storage.delete(storage_key)
    except Unavailable:
        logger.warning("file.bytes_left storage_key=%s", storage_key)
