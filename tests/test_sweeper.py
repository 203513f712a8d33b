"""The sweeper: abandoned files go after the grace period (rows first, each with its blob's tombstone)."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event, update

from lapse import metrics, sweeper
from lapse.app import create_app
from lapse.db.base import utc_now
from lapse.db.models import File, Link
from lapse.db.session import transaction
from lapse.files.repository import FileRepository
from lapse.runtime import Runtime, open_runtime
from lapse.settings import Settings
from lapse.sweeper import sweep_once
from tests.helpers import ApiClient, new_key, stored_files

pytestmark = pytest.mark.anyio
HOUR = timedelta(hours=1)


async def expire(runtime: Runtime, link: dict[str, str], ago: timedelta) -> None:
    """Make the link have expired `ago`, and its file have been uploaded a day before that."""
    async with transaction(runtime.sessions) as session:
        await session.execute(update(Link).where(Link.id == link["id"]).values(expires_at=utc_now() - ago))
        created = utc_now() - ago - timedelta(days=1)
        await session.execute(update(File).where(File.id == link["file_id"]).values(created_at=created))


async def file_ids(owner: ApiClient) -> set[str]:
    return {f["id"] for f in (await owner.request("GET", "/api/v1/files")).json()["items"]}


async def test_file_with_a_live_link_stays(alice: ApiClient, runtime: Runtime) -> None:
    link = await alice.share(b"x", expires_in=3 * 3600)
    report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=utc_now() + 2 * HOUR)
    assert report.files == 0
    assert await file_ids(alice) == {link["file_id"]}


async def test_file_dead_for_longer_than_grace_goes(
    alice: ApiClient, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    kept = await alice.share(b"recent")
    gone = await alice.share(b"old")
    await expire(runtime, kept, timedelta(minutes=30))  # dead, but within the grace period
    await expire(runtime, gone, timedelta(hours=2))
    blobs = runtime.settings.data_dir / "blobs"
    assert len(stored_files(blobs)) == 2
    report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)
    assert report.files == 1
    assert await file_ids(alice) == {kept["file_id"]}
    assert len(stored_files(blobs)) == 1
    assert (await http.get(gone["path"])).json()["reason"] == "file_deleted"


async def test_exhausted_and_revoked_links_count_from_when_they_died(
    alice: ApiClient, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    used = await alice.share(b"x", max_downloads=1, expires_in=30 * 86400)
    revoked = await alice.share(b"y", expires_in=30 * 86400)
    await http.get(used["path"])
    await alice.request("DELETE", f"/api/v1/links/{revoked['id']}")
    assert (await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)).files == 0
    later = utc_now() + 2 * HOUR
    assert (await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=later)).files == 2


async def test_file_never_linked_goes_after_grace(alice: ApiClient, runtime: Runtime) -> None:
    await alice.upload(b"x")
    assert (await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)).files == 0
    assert (await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=utc_now() + 2 * HOUR)).files == 1


async def test_concurrent_sweeps_do_not_conflict(alice: ApiClient, runtime: Runtime) -> None:
    for i in range(6):
        await alice.upload(f"{i}".encode())
    later = utc_now() + 2 * HOUR
    reports = []

    async def sweep() -> None:
        reports.append(await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=later))

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(sweep)
    assert sum(r.files for r in reports) == 6
    assert await file_ids(alice) == set()
    assert stored_files(runtime.settings.data_dir / "blobs") == []


async def test_the_lifespan_runs_the_sweeper(settings: Settings) -> None:
    quick = settings.model_copy(
        update={
            "sweep_interval": timedelta(seconds=0.2),
            "file_grace": timedelta(0),
            "grant_ttl": timedelta(seconds=1),
        }
    )
    async with LifespanManager(create_app(quick)) as manager, open_runtime(quick) as runtime:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            owner = ApiClient(http, await new_key(runtime, "sweepy"))
            await owner.upload(b"never linked")
            # The row goes first and is committed, then the blob (from the outbox): both must go, in time.
            blobs = quick.data_dir / "blobs"
            with anyio.fail_after(15):
                while await file_ids(owner) or stored_files(blobs):  # noqa: ASYNC110 - polls the sweeper task
                    await anyio.sleep(0.1)


async def test_the_delete_re_checks_for_a_live_link(alice: ApiClient, runtime: Runtime) -> None:
    """A link committed after the sweeper read a file as abandoned (between its read and its lock) keeps it."""
    old = await alice.share(b"x")
    await expire(runtime, old, timedelta(hours=2))
    cutoff = utc_now() - HOUR
    async with transaction(runtime.sessions) as session:
        repo = FileRepository(session)
        assert await repo.abandoned_ids(cutoff=cutoff, after="", limit=10) == [old["file_id"]]
    fresh = await alice.link(old["file_id"])
    async with transaction(runtime.sessions) as session:
        assert not await FileRepository(session).delete_if_abandoned(old["file_id"], cutoff=cutoff, now=utc_now())
    assert await file_ids(alice) == {old["file_id"]}
    assert fresh["state"] == "active"


async def test_a_pass_never_holds_the_write_lock_across_a_scan(
    alice: ApiClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Candidates are read in transactions that take no write lock; deletions go a few at a time, each batch in a
    short write transaction of its own. Statements are watched as the database driver gets them."""
    monkeypatch.setattr(sweeper, "DELETE_BATCH", 3)
    monkeypatch.setattr(sweeper, "SCAN_BATCH", 4)
    for i in range(10):
        await alice.upload(f"{i}".encode())
    sqlite = runtime.engine.url.get_backend_name() == "sqlite"
    transactions: list[list[str]] = []

    def before(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(("BEGIN", "SAVEPOINT")) or not transactions:
            transactions.append([])
        transactions[-1].append(statement)

    def began(_connection: Any) -> None:
        transactions.append(["BEGIN"])  # PostgreSQL's BEGIN is the driver's own; SQLite's comes through `before`

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", before)
    if not sqlite:
        event.listen(runtime.engine.sync_engine, "begin", began)
    try:
        report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=utc_now() + 2 * HOUR)
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", before)
        if not sqlite:
            event.remove(runtime.engine.sync_engine, "begin", began)
    assert report.files == 10
    assert await file_ids(alice) == set()
    scans = [t for t in transactions if any("ORDER BY files.id" in s for s in t)]
    deletes = [t for t in transactions if any(s.startswith("DELETE FROM files") for s in t)]
    assert len(scans) == 3  # 4 + 4 + 2 candidates
    assert all(not any(s.startswith(("DELETE", "UPDATE", "INSERT")) for s in t) for t in scans)
    if sqlite:
        assert [t[0] for t in scans] == ["BEGIN"] * 3, scans  # deferred: no write lock while scanning
        assert [t[0] for t in deletes] == ["BEGIN IMMEDIATE"] * 5, deletes
    assert len(deletes) == 5  # 3 + 1 and 3 + 1 from the two full scans, 2 from the last: each its own transaction
    assert all(sum(s.startswith("DELETE FROM files") for s in t) <= 3 for t in deletes)


def test_one_worker_per_host_holds_the_sweep(tmp_path: Path) -> None:
    lock = tmp_path / "sweeper.lock"
    with sweeper._host_lock(lock) as first, sweeper._host_lock(lock) as second:
        assert first()
        assert not second()  # another worker of the same host stands by
    with sweeper._host_lock(lock) as third:
        assert third()  # the first let go when it stopped


async def test_what_is_swept_is_counted_in_metrics(alice: ApiClient, http: httpx.AsyncClient, runtime: Runtime) -> None:
    await alice.upload(b"unlinked")
    before = metrics.SWEPT_FILES._value.get()
    assert (await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=utc_now() + 2 * HOUR)).files == 1
    assert metrics.SWEPT_FILES._value.get() - before == 1
    assert "lapse_swept_files_total" in (await http.get("/metrics")).text
