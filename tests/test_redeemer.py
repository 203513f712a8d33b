"""The lean redemption path (links.redeemer): the same rows and the same rule as the ORM, on SQLite and PostgreSQL."""

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from lapse.db.base import utc_now
from lapse.db.models import File, Link
from lapse.db.rows import sqlite_datetime
from lapse.db.session import transaction
from lapse.errors import Unavailable
from lapse.links.minter import AsyncpgMinter, SqliteMinter
from lapse.links.redeemer import AsyncpgRedeemer, SqliteRedeemer
from lapse.links.repository import LinkRepository
from lapse.runtime import Runtime
from lapse.tokens import hash_secret
from tests.helpers import ApiClient

pytestmark = pytest.mark.anyio


def token_of(link: dict[str, str]) -> str:
    return link["path"].rsplit("/", 1)[1]


async def test_each_database_gets_its_raw_redeemer_and_minter(runtime: Runtime) -> None:
    sqlite = runtime.engine.url.get_backend_name() == "sqlite"
    assert isinstance(runtime.redeemer, SqliteRedeemer if sqlite else AsyncpgRedeemer)
    assert isinstance(runtime.minter, SqliteMinter if sqlite else AsyncpgMinter)


async def test_find_returns_what_the_orm_reads(alice: ApiClient, runtime: Runtime) -> None:
    link = await alice.share(b"hello", name="n\u00e4me.txt", max_downloads=3, note="a note")
    found = await runtime.redeemer.find(hash_secret(runtime.secret, token_of(link)))
    assert found is not None
    raw_link, raw_file = found
    assert raw_file is not None
    async with transaction(runtime.sessions) as session:
        orm_link = (await session.execute(select(Link).where(Link.id == link["id"]))).scalar_one()
        orm_file = (await session.execute(select(File).where(File.id == orm_link.file_id))).scalar_one()
        for column in [c.name for c in Link.__table__.columns]:
            assert getattr(raw_link, column) == getattr(orm_link, column), column
        for column in [c.name for c in File.__table__.columns]:
            assert getattr(raw_file, column) == getattr(orm_file, column), column
    assert raw_link.expires_at.tzinfo is not None
    assert await runtime.redeemer.find(hash_secret(runtime.secret, "x" * 32)) is None


async def test_find_after_the_file_is_deleted(alice: ApiClient, runtime: Runtime) -> None:
    link = await alice.share(b"hello")
    await alice.request("DELETE", f"/api/v1/files/{link['file_id']}")
    found = await runtime.redeemer.find(hash_secret(runtime.secret, token_of(link)))
    assert found is not None
    assert found[0].file_id is None
    assert found[1] is None


@pytest.mark.parametrize("flavour", ["raw", "session"])
async def test_concurrent_redemptions_stop_at_exactly_k(alice: ApiClient, runtime: Runtime, flavour: str) -> None:
    """The same statement, on the raw connection and through the ORM (each redemption its own transaction)."""

    async def in_a_session(link_id: str, now: datetime) -> int | None:
        async with transaction(runtime.sessions) as session:
            return await LinkRepository(session).redeem(link_id, now)

    redeem = runtime.redeemer.redeem if flavour == "raw" else in_a_session
    link = await alice.share(b"hello", max_downloads=3)
    now = utc_now()
    counts = await asyncio.gather(*(redeem(link["id"], now) for _ in range(20)))
    assert sorted(c for c in counts if c is not None) == [1, 2, 3]
    async with transaction(runtime.sessions) as session:
        stored = (await session.execute(select(Link).where(Link.id == link["id"]))).scalar_one()
    assert stored.downloads == 3
    assert stored.exhausted_at is not None  # set by the redemption that took the last download
    assert abs(stored.exhausted_at - now) < timedelta(seconds=1)


async def test_redeem_refuses_expired_and_revoked_links(alice: ApiClient, runtime: Runtime) -> None:
    expired = await alice.share(b"x")
    revoked = await alice.share(b"x")
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Link).where(Link.id == expired["id"]).values(expires_at=utc_now() - timedelta(microseconds=1))
        )
    await alice.request("DELETE", f"/api/v1/links/{revoked['id']}")
    assert await runtime.redeemer.redeem(expired["id"], utc_now()) is None
    assert await runtime.redeemer.redeem(revoked["id"], utc_now()) is None
    assert await runtime.redeemer.redeem("nope", utc_now()) is None
    fresh = await runtime.redeemer.get_link(expired["id"])
    assert fresh is not None
    assert fresh.downloads == 0


async def test_sqlite_text_of_a_datetime_is_the_orms(alice: ApiClient, runtime: Runtime) -> None:
    """`expires_at > :now` compares text on SQLite: the raw path must write `now` exactly as the ORM does."""
    link = await alice.share(b"x")
    raw = await runtime.redeemer.get_link(link["id"])
    assert raw is not None
    assert raw.expires_at.isoformat() == link["expires_at"].replace("Z", "+00:00")
    if runtime.engine.url.get_backend_name() != "sqlite":
        return  # PostgreSQL compares timestamptz values, not text; the round trip above is the check
    async with transaction(runtime.sessions) as session:
        orm_link = (await session.execute(select(Link).where(Link.id == link["id"]))).scalar_one()
        stored = (await session.execute(text("SELECT expires_at FROM links WHERE id = :i"), {"i": link["id"]})).scalar()
    assert stored == sqlite_datetime(orm_link.expires_at)
    # A link expiring at this exact microsecond is expired, one microsecond later it is live: as in the ORM.
    assert await runtime.redeemer.redeem(link["id"], orm_link.expires_at) is None
    assert await runtime.redeemer.redeem(link["id"], orm_link.expires_at - timedelta(microseconds=1)) == 1


async def test_sqlite_errors_fail_closed(tmp_path: Path) -> None:
    redeemer = SqliteRedeemer(str(tmp_path / "missing" / "folder" / "lapse.db"))
    try:
        with pytest.raises(Unavailable):
            await redeemer.find("h" * 64)
    finally:
        await redeemer.aclose()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    redeemer = SqliteRedeemer(str(empty))  # no tables: an operational error, answered 503
    try:
        with pytest.raises(Unavailable):
            await redeemer.redeem("x", utc_now())
    finally:
        await redeemer.aclose()


async def test_postgresql_unreachable_fails_closed() -> None:
    from sqlalchemy.engine import make_url

    redeemer = AsyncpgRedeemer(make_url("postgresql://nobody@127.0.0.1:1/none"))  # nothing listens on port 1
    try:
        with pytest.raises(Unavailable):
            await redeemer.redeem("x", utc_now())
    finally:
        await redeemer.aclose()
