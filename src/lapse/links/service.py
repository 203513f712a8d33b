"""Links: mint, read, list, change, revoke. Redeeming them is `links/redemption.py`."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from lapse import metrics
from lapse.db.models import ApiKey, File, Link
from lapse.errors import Gone, GoneReason, InvalidInput, NotFound
from lapse.files import service as files_service
from lapse.links.repository import LinkRepository
from lapse.links.schemas import LinkCreate, LinkRead, LinkState, LinkUpdate
from lapse.text import clean_text
from lapse.tokens import hash_secret, new_id, new_link_token

password_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


@dataclass(frozen=True, slots=True)
class ExpiryPolicy:
    default_ttl: timedelta
    max_ttl: timedelta

    def expires_at(self, *, now: datetime, expires_in: int | None, expires_at: datetime | None) -> datetime:
        """The client's expiry, the default when none, never past now + max_ttl and never before now (a past
        time means "expired now"; clamping also keeps year-1 datetimes from overflowing on their way to UTC)."""
        latest = now + self.max_ttl
        if expires_at is not None:
            wanted = expires_at
        elif expires_in is not None:
            wanted = now + timedelta(seconds=min(expires_in, int(self.max_ttl.total_seconds())))
        else:
            wanted = now + self.default_ttl
        return max(min(wanted, latest), now)


def link_state(link: Link, now: datetime) -> LinkState:
    if link.file_id is None:
        return LinkState.FILE_DELETED
    if link.revoked_at is not None:
        return LinkState.REVOKED
    if link.expires_at <= now:
        return LinkState.EXPIRED
    if link.max_downloads is not None and link.downloads >= link.max_downloads:
        return LinkState.EXHAUSTED
    return LinkState.ACTIVE


def describe(link: Link, *, now: datetime, base_url: str | None = None, token: str | None = None) -> LinkRead:
    """The API's view of a link; its URLs only when the token is at hand (in the answer that created it)."""
    url = page_url = None
    if base_url is not None and token is not None:
        url, page_url = f"{base_url}d/{token}", f"{base_url}s/{token}"
    remaining = None if link.max_downloads is None else max(link.max_downloads - link.downloads, 0)
    return LinkRead(
        id=link.id,
        file_id=link.file_id,
        url=url,
        page_url=page_url,
        expires_at=link.expires_at,
        max_downloads=link.max_downloads,
        downloads=link.downloads,
        remaining=remaining,
        state=link_state(link, now),
        has_password=link.password_hash is not None,
        note=link.note,
        created_at=link.created_at,
        revoked_at=link.revoked_at,
    )


def _clean_note(note: str | None) -> str | None:
    return None if note is None else (clean_text(note, max_length=1000) or None)


@dataclass(frozen=True, slots=True)
class NewLink:
    """A link decided and hashed, before its file is checked and its row stored (`store_link`, or
    `links.minter` on SQLite). Deciding comes first, outside any transaction: argon2 takes ~50 ms of CPU and
    must not hold SQLite's write lock or a PostgreSQL row lock meanwhile."""

    token_hash: str
    expires_at: datetime
    max_downloads: int | None
    password_hash: str | None
    note: str | None

    def row(self, *, file_id: str, owner_id: str, now: datetime) -> dict[str, Any]:
        """Every column of the new row, keyed by the model's own names."""
        return {
            "id": new_id(),
            "file_id": file_id,
            "owner_id": owner_id,
            "token_hash": self.token_hash,
            "expires_at": self.expires_at,
            "max_downloads": self.max_downloads,
            "downloads": 0,
            "exhausted_at": None,
            "password_hash": self.password_hash,
            "note": self.note,
            "revoked_at": None,
            "created_at": now,
        }


async def new_link(data: LinkCreate, *, policy: ExpiryPolicy, secret: bytes, now: datetime) -> tuple[NewLink, str]:
    """Returns the link and its token; the token is never stored, so this is the only time it is known."""
    expires_at = policy.expires_at(now=now, expires_in=data.expires_in, expires_at=data.expires_at)
    if expires_at <= now:
        raise InvalidInput("The expiry is in the past.")
    token = new_link_token()
    password_hash = None
    if data.password is not None:
        password_hash = await anyio.to_thread.run_sync(password_hasher.hash, data.password)
    decided = NewLink(
        token_hash=hash_secret(secret, token),
        expires_at=expires_at,
        max_downloads=data.max_downloads,
        password_hash=password_hash,
        note=_clean_note(data.note),
    )
    return decided, token


async def store_link(session: AsyncSession, *, owner: ApiKey, file_id: str, new: NewLink, now: datetime) -> Link:
    file = await files_service.get_file_to_link(session, owner=owner, file_id=file_id)
    link = await LinkRepository(session).insert(new.row(file_id=file.id, owner_id=file.owner_id, now=now))
    metrics.LINKS.inc()
    return link


async def create_link(
    session: AsyncSession,
    *,
    owner: ApiKey,
    file_id: str,
    data: LinkCreate,
    policy: ExpiryPolicy,
    secret: bytes,
    now: datetime,
) -> tuple[Link, str]:
    """`new_link`, then `store_link` in this session."""
    new, token = await new_link(data, policy=policy, secret=secret, now=now)
    return await store_link(session, owner=owner, file_id=file_id, new=new, now=now), token


async def get_link(session: AsyncSession, *, owner: ApiKey, link_id: str) -> Link:
    link = await LinkRepository(session).get(link_id, owner_id=files_service.owner_scope(owner))
    if link is None:
        raise NotFound("No such link.")
    return link


async def list_links(
    session: AsyncSession, *, owner: ApiKey, file_id: str | None, cursor: str | None, limit: int
) -> Sequence[Link]:
    if file_id is not None:  # 404 for another owner's file, as for one that never existed
        await files_service.get_file(session, owner=owner, file_id=file_id)
    repo = LinkRepository(session)
    return await repo.page(owner_id=files_service.owner_scope(owner), file_id=file_id, cursor=cursor, limit=limit)


async def newest_links_of_files(
    session: AsyncSession, *, owner: ApiKey, files: Sequence[File], limit: int
) -> dict[str, list[Link]]:
    """The newest `limit` links of each of `files` (the owner's, as listed for them), in one query."""
    repo = LinkRepository(session)
    ids = [file.id for file in files]
    return await repo.newest_per_file(ids, owner_id=files_service.owner_scope(owner), limit=limit)


async def update_link(
    session: AsyncSession,
    *,
    owner: ApiKey,
    link_id: str,
    data: LinkUpdate,
    policy: ExpiryPolicy,
    now: datetime,
) -> Link:
    """Extend or shorten the expiry, raise or lower the limit, change the note. A revoked link stays revoked."""
    link = await get_link(session, owner=owner, link_id=link_id)
    state = link_state(link, now)
    if state in (LinkState.REVOKED, LinkState.FILE_DELETED):
        raise Gone(GoneReason(state.value))
    changes: dict[str, object] = {}
    if data.expires_in is not None or data.expires_at is not None:
        changes["expires_at"] = policy.expires_at(now=now, expires_in=data.expires_in, expires_at=data.expires_at)
    if "max_downloads" in data.model_fields_set:
        limit = data.max_downloads
        changes["max_downloads"] = limit
        # exhausted_at is when the last download went; the downloads themselves stay counted.
        changes["exhausted_at"] = (link.exhausted_at or now) if limit is not None and link.downloads >= limit else None
    if "note" in data.model_fields_set:
        changes["note"] = _clean_note(data.note)
    if changes:
        await LinkRepository(session).update(link.id, **changes)
        await session.refresh(link)
    return link


async def revoke_link(session: AsyncSession, *, owner: ApiKey, link_id: str, now: datetime) -> Link:
    link = await get_link(session, owner=owner, link_id=link_id)
    await LinkRepository(session).revoke(link.id, now)
    await session.refresh(link)
    return link
