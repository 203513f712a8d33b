"""API keys: issue, authenticate, revoke. Keys are stored only as HMACs of the server secret."""

import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from lapse.db.models import ApiKey
from lapse.errors import NotFound, Unauthorized
from lapse.keys.repository import KeyRepository
from lapse.text import clean_text
from lapse.tokens import hash_secret, new_api_key

# Writing last_used_at on every request would turn each read into a write; a minute's precision is plenty.
LAST_USED_PRECISION = timedelta(minutes=1)


def presented_key_hash(secret: bytes, raw_key: str | None) -> str:
    """The HMAC a key is stored under; 401 when no key was sent."""
    if not raw_key or not raw_key.strip():
        raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.")
    return hash_secret(secret, raw_key.strip())


def checked_key(key: ApiKey | None, key_hash: str) -> ApiKey:
    """The active key found under `key_hash`, or 401. The lookup is by an HMAC the caller cannot steer;
    compare_digest keeps the final check constant-time too."""
    if key is None or not hmac.compare_digest(key.key_hash, key_hash):
        raise Unauthorized("The API key is not valid.")
    return key


def needs_touch(key: ApiKey, now: datetime) -> bool:
    return key.last_used_at is None or now - key.last_used_at >= LAST_USED_PRECISION


async def authenticate(session: AsyncSession, *, secret: bytes, raw_key: str | None, now: datetime) -> ApiKey:
    key_hash = presented_key_hash(secret, raw_key)
    key = checked_key(await KeyRepository(session).get_active_by_hash(key_hash), key_hash)
    if needs_touch(key, now):
        await KeyRepository(session).touch(key.id, now)
        key.last_used_at = now
    return key


async def get_active_key(session: AsyncSession, *, key_id: str) -> ApiKey:
    """The key a browser session names, looked up again on every request: revoking it ends its sessions."""
    key = await KeyRepository(session).get(key_id)
    if key is None or key.revoked_at is not None:
        raise Unauthorized("Your session has ended; sign in again.")
    return key


async def create_key(session: AsyncSession, *, secret: bytes, name: str, admin: bool) -> tuple[ApiKey, str]:
    raw = new_api_key()
    key = ApiKey(name=clean_text(name, max_length=200) or "key", key_hash=hash_secret(secret, raw), is_admin=admin)
    await KeyRepository(session).add(key)
    return key, raw


async def create_first_admin(session: AsyncSession, *, secret: bytes) -> str | None:
    """On a fresh install, one admin key so the server is usable at once; None when any key exists."""
    repo = KeyRepository(session)
    await repo.lock_keys()  # two servers starting at once on an empty database make one key, not two
    if await repo.count() > 0:
        return None
    _, raw = await create_key(session, secret=secret, name="first admin", admin=True)
    return raw


async def list_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return await KeyRepository(session).list_all()


async def revoke_key(session: AsyncSession, *, key_id: str, now: datetime) -> ApiKey:
    repo = KeyRepository(session)
    key = await repo.get(key_id)
    if key is None:
        raise NotFound("No such key.")
    await repo.revoke(key_id, now)
    await session.refresh(key)
    return key
