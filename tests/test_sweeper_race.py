"""The sweeper and link creation on PostgreSQL, in real concurrent transactions: a link made for a file at the
instant the sweeper deletes it either keeps the file or is refused (404); never 201 and then 410."""

import asyncio
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lapse.db.base import utc_now
from lapse.db.models import File, Link
from lapse.db.session import transaction
from lapse.keys import service as keys_service
from lapse.links import service as links_service
from lapse.links.schemas import LinkCreate
from lapse.runtime import Runtime
from lapse.sweeper import sweep_once
from tests.helpers import ApiClient

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]
HOUR = timedelta(hours=1)


async def backends_waiting_on_a_lock(engine: AsyncEngine) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    async with engine.connect() as connection:
        return int((await connection.execute(text(query))).scalar_one())


async def until(engine: AsyncEngine, *, waiting: int, or_done: Callable[[], bool]) -> None:
    """Until `waiting` transactions wait on a row lock, or `or_done()`; only a time limit to keep a broken build
    from hanging."""
    for _ in range(200):
        if or_done() or await backends_waiting_on_a_lock(engine) >= waiting:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never {waiting} transactions waiting on a lock")


async def age(runtime: Runtime, file_id: str) -> None:
    """Make the file a day old and every link of it dead for two hours: past any grace of an hour."""
    async with transaction(runtime.sessions) as session:
        await session.execute(update(File).where(File.id == file_id).values(created_at=utc_now() - timedelta(days=1)))
        await session.execute(update(Link).where(Link.file_id == file_id).values(expires_at=utc_now() - 2 * HOUR))


async def test_a_link_being_made_keeps_its_file_from_the_sweeper(
    alice: ApiClient, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    file = await alice.upload(b"wanted after all")
    await age(runtime, file["id"])
    async with transaction(runtime.sessions) as session:  # the link's transaction, still open while the sweep runs
        owner = await keys_service.authenticate(session, secret=runtime.secret, raw_key=alice.key, now=utc_now())
        _, token = await links_service.create_link(
            session,
            owner=owner,
            file_id=file["id"],
            data=LinkCreate(),
            policy=runtime.expiry,
            secret=runtime.secret,
            now=utc_now(),
        )
        sweep = asyncio.create_task(sweep_once(runtime.sessions, runtime.storage, grace=HOUR))
        await until(runtime.engine, waiting=1, or_done=sweep.done)
    report = await sweep
    assert report.files == 0
    http.cookies.clear()
    download = await http.get(f"/d/{token}")
    assert download.status_code == 200
    assert download.content == b"wanted after all"


async def test_a_link_asked_for_while_the_sweeper_deletes_is_refused(
    alice: ApiClient, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    old = await alice.share(b"swept")
    await age(runtime, old["file_id"])
    # Hold the file's dead link: the sweeper stops inside its transaction when it reaches that row.
    async with runtime.sessions() as holder, holder.begin():
        await holder.execute(select(Link.id).where(Link.id == old["id"]).with_for_update())
        sweep = asyncio.create_task(sweep_once(runtime.sessions, runtime.storage, grace=HOUR))
        await until(runtime.engine, waiting=1, or_done=sweep.done)
        create = asyncio.create_task(alice.request("POST", f"/api/v1/files/{old['file_id']}/links", json={}))
        await until(runtime.engine, waiting=2, or_done=create.done)
        await holder.rollback()
    report, created = await sweep, await create
    assert report.files == 1
    assert created.status_code == 404, created.text  # not a link to a file that is gone
    async with transaction(runtime.sessions) as session:
        stranded = (await session.execute(select(Link.id).where(Link.file_id.is_(None)))).scalars().all()
    assert stranded == [old["id"]]
