"""Nothing left behind in a local blob folder: upload intents, the delete outbox (tombstones) and the sweeper's
safety-net listing, on SQLite and PostgreSQL."""

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from lapse import metrics, sweeper
from lapse.db.base import utc_now
from lapse.db.leases import LeaseRepository
from lapse.db.models import ApiKey, File
from lapse.db.session import transaction
from lapse.files import service as files_service
from lapse.files.repository import IntentRepository, known_keys
from lapse.runtime import Runtime
from lapse.storage import new_key
from lapse.sweeper import ORPHAN_AGE, SAFETY_NET, SCAN_EVERY, STALE_AFTER, sweep_once
from tests.helpers import ApiClient, stored_files
from tests.outbox import Keys, intent, keys

pytestmark = pytest.mark.anyio
HOUR = timedelta(hours=1)
NOTHING = Keys(files=set(), intents=set(), tombstones=set())


def paused_body(first: bytes, rest: bytes, pause: Callable[[], Awaitable[None]]) -> AsyncIterator[bytes]:
    """A request body that stops after `first` to let the test look around, then sends `rest`."""

    async def body() -> AsyncIterator[bytes]:
        yield first
        await pause()
        yield rest

    return body()


def blob_path(blobs: Path, key: str) -> Path:
    return blobs / key[:2] / key


def age(path: Path, by: timedelta) -> None:
    then = time.time() - by.total_seconds()
    os.utime(path, (then, then))


async def test_an_upload_in_flight_has_an_intent_and_a_stored_file_none(
    alice: ApiClient, runtime: Runtime, blobs: Path
) -> None:
    seen: list[Keys] = []

    async def look() -> None:
        seen.append(await keys(runtime.sessions))

    response = await alice.request("PUT", "/api/v1/files/a.bin", content=paused_body(b"a" * 1000, b"b" * 1000, look))
    assert response.status_code == 201, response.text
    [during] = seen
    assert (len(during.intents), during.files, during.tombstones) == (1, set(), set())
    after = await keys(runtime.sessions)
    assert after == Keys(files=during.intents, intents=set(), tombstones=set())  # the same key, now a file
    assert stored_files(blobs) == [blob_path(blobs, next(iter(after.files)))]


async def test_the_heartbeat_moves_while_bytes_flow(
    alice: ApiClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_service, "HEARTBEAT_EVERY", 0.0)  # every chunk, to see it without waiting a minute
    beats = []

    async def look() -> None:
        [key] = (await keys(runtime.sessions)).intents
        found = await intent(runtime.sessions, key)
        assert found is not None
        beats.append((found.started_at, found.heartbeat_at))

    response = await alice.request("PUT", "/api/v1/files/a.bin", content=paused_body(b"a", b"b", look))
    assert response.status_code == 201
    [(started, beat)] = beats
    assert beat > started


async def test_a_failed_upload_leaves_no_intent_and_no_blob(alice: ApiClient, runtime: Runtime, blobs: Path) -> None:
    seen: list[Keys] = []

    async def look() -> None:
        seen.append(await keys(runtime.sessions))

    rest = b"x" * runtime.settings.max_upload_size
    response = await alice.request("PUT", "/api/v1/files/big.bin", content=paused_body(b"a" * 1000, rest, look))
    assert response.status_code == 413
    assert len(seen[0].intents) == 1  # there was one while it ran
    assert await keys(runtime.sessions) == NOTHING
    assert stored_files(blobs) == []


async def test_a_crash_between_the_row_delete_and_the_blob_delete_loses_nothing(
    alice: ApiClient, runtime: Runtime, blobs: Path
) -> None:
    file = await alice.upload(b"to be deleted")
    owner = await _owner(runtime, file["id"])
    async with transaction(runtime.sessions) as session:  # the route's transaction, committed; then the crash
        key = await files_service.delete_file(session, owner=owner, file_id=file["id"])
    assert await keys(runtime.sessions) == Keys(files=set(), intents=set(), tombstones={key})
    assert blob_path(blobs, key).exists()
    before = metrics.SWEPT_TOMBSTONES._value.get()
    report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)
    assert report.tombstones == 1
    assert metrics.SWEPT_TOMBSTONES._value.get() - before == 1
    assert stored_files(blobs) == []
    assert await keys(runtime.sessions) == NOTHING


async def test_a_tombstone_whose_blob_cannot_be_deleted_stays_for_the_next_pass(
    alice: ApiClient, runtime: Runtime, blobs: Path
) -> None:
    file = await alice.upload(b"to be deleted")
    owner = await _owner(runtime, file["id"])
    async with transaction(runtime.sessions) as session:
        key = await files_service.delete_file(session, owner=owner, file_id=file["id"])
    shard = blob_path(blobs, key).parent
    shard.chmod(0o500)  # the unlink fails: storage refuses
    try:
        report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)
    finally:
        shard.chmod(0o700)
    if os.geteuid() != 0:  # root ignores the folder's mode; then this half shows nothing
        assert report.tombstones == 0
        assert (await keys(runtime.sessions)).tombstones == {key}
    assert (await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)).tombstones == int(os.geteuid() != 0)
    assert stored_files(blobs) == []
    assert await keys(runtime.sessions) == NOTHING


async def test_deleting_a_file_removes_its_blob_and_its_tombstone_at_once(
    alice: ApiClient, http: httpx.AsyncClient, runtime: Runtime, blobs: Path
) -> None:
    file = await alice.upload(b"to be deleted")
    assert (await alice.request("DELETE", f"/api/v1/files/{file['id']}")).status_code == 204
    assert stored_files(blobs) == []
    assert await keys(runtime.sessions) == NOTHING


async def test_the_sweeper_tombstones_the_files_it_deletes(alice: ApiClient, runtime: Runtime, blobs: Path) -> None:
    await alice.upload(b"never linked")
    report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=utc_now() + 2 * HOUR)
    assert (report.files, report.tombstones) == (1, 1)
    assert stored_files(blobs) == []
    assert await keys(runtime.sessions) == NOTHING


async def test_a_dead_upload_is_aborted_from_its_intent_once_stale(runtime: Runtime, blobs: Path) -> None:
    """What a process killed mid-upload leaves: an intent and a temp file. Young, it may be alive: left alone."""
    key = new_key()
    async with transaction(runtime.sessions) as session:
        await IntentRepository(session).add(key, now=utc_now())
    temp = blob_path(blobs, key).with_name(".tmp-" + key)
    temp.parent.mkdir(parents=True)
    temp.write_bytes(b"half an upload")
    report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)
    assert report.intents == 0
    assert temp.exists()
    before = metrics.SWEPT_INTENTS._value.get()
    report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=utc_now() + STALE_AFTER + HOUR)
    assert report.intents == 1
    assert metrics.SWEPT_INTENTS._value.get() - before == 1
    assert stored_files(blobs) == []
    assert await keys(runtime.sessions) == NOTHING


async def test_an_upload_whose_intent_the_sweeper_took_is_not_kept(
    alice: ApiClient, runtime: Runtime, blobs: Path
) -> None:
    """The sweeper judged it dead (its heartbeat stale) while it still ran: it must not become a row whose blob
    the sweeper is removing."""

    async def sweep_as_if_much_later() -> None:
        report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=utc_now() + 2 * STALE_AFTER)
        assert report.intents == 1

    response = await alice.request(
        "PUT", "/api/v1/files/slow.bin", content=paused_body(b"a" * 1000, b"b" * 1000, sweep_as_if_much_later)
    )
    assert response.status_code == 503, response.text
    assert await keys(runtime.sessions) == NOTHING
    assert stored_files(blobs) == []


async def test_the_safety_net_deletes_old_orphans_only(alice: ApiClient, runtime: Runtime, blobs: Path) -> None:
    kept = await alice.upload(b"kept")
    [kept_key] = (await keys(runtime.sessions)).files
    in_flight = new_key()
    async with transaction(runtime.sessions) as session:
        await IntentRepository(session).add(in_flight, now=utc_now())
    names = [new_key(), new_key(), ".tmp-" + new_key()]
    paths = [blob_path(blobs, name.removeprefix(".tmp-")).with_name(name) for name in names]
    paths.append(blob_path(blobs, in_flight).with_name(".tmp-" + in_flight))
    old_orphan, young_orphan, old_temp, in_flight_temp = paths
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"junk")
    for path in (old_orphan, old_temp, in_flight_temp, blob_path(blobs, kept_key)):
        age(path, ORPHAN_AGE + HOUR)
    age(young_orphan, ORPHAN_AGE - HOUR)
    stray = blobs / "ab" / "notes.txt"  # not a name we make: never ours to delete
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"mine")
    age(stray, 10 * ORPHAN_AGE)

    report = await sweep_once(runtime.sessions, runtime.storage, grace=10 * ORPHAN_AGE)
    assert (report.scanned, report.orphans, report.temp_files) == (True, 1, 1)
    assert not old_orphan.exists()
    assert not old_temp.exists()
    assert young_orphan.exists()
    assert in_flight_temp.exists()
    assert stray.exists()
    assert blob_path(blobs, kept_key).exists()
    assert (await alice.request("GET", f"/api/v1/files/{kept['id']}")).status_code == 200


async def test_only_the_lease_holder_lists_and_not_again_before_its_time(runtime: Runtime, blobs: Path) -> None:
    def orphan() -> Path:
        key = new_key()
        path = blob_path(blobs, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"junk")
        age(path, ORPHAN_AGE + HOUR)
        return path

    now = utc_now()
    first = orphan()
    one = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=now, holder="replica-a")
    assert (one.scanned, one.orphans) == (True, 1)
    assert not first.exists()
    second = orphan()
    other = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=now, holder="replica-b")
    again = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=now + HOUR, holder="replica-a")
    assert (other.scanned, other.orphans, again.scanned, again.orphans) == (False, 0, False, 0)
    assert second.exists()
    later = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=now + SCAN_EVERY, holder="replica-b")
    assert (later.scanned, later.orphans) == (True, 1)
    assert not second.exists()
    async with transaction(runtime.sessions) as session:
        assert await LeaseRepository(session).holder(SAFETY_NET) == "replica-b"


async def test_one_of_two_replicas_asking_at_once_gets_the_lease(runtime: Runtime) -> None:
    now = utc_now()
    taken = []
    for holder in ("a", "b"):
        async with transaction(runtime.sessions) as session:
            taken.append(await LeaseRepository(session).take("job", holder=holder, now=now, until=now + HOUR))
    assert taken == [True, False]


async def test_the_safety_net_reads_the_listing_a_page_at_a_time(
    runtime: Runtime, blobs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each page is checked against the database with one query, and never the whole listing at once."""
    made = []
    for _ in range(6):
        key = new_key()
        path = blob_path(blobs, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"junk")
        age(path, ORPHAN_AGE + HOUR)
        made.append(key)
    pages = [page async for page in runtime.storage.scan()]
    checked: list[int] = []
    known = known_keys

    async def counted(session: object, page_keys: list[str]) -> set[str]:
        checked.append(len(page_keys))
        return await known(session, page_keys)  # type: ignore[arg-type]

    monkeypatch.setattr(sweeper, "known_keys", counted)
    report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)
    assert report.orphans == 6
    assert sorted(checked) == sorted(len(page) for page in pages)
    assert len({key[:2] for key in made}) == len(pages)  # one page per shard folder
    assert stored_files(blobs) == []


async def _owner(runtime: Runtime, file_id: str) -> ApiKey:
    async with transaction(runtime.sessions) as session:
        file = await session.get(File, file_id)
        assert file is not None
        owner = await session.get(ApiKey, file.owner_id)
        assert owner is not None
        return owner


async def test_the_safety_net_lists_a_crowded_shard_in_pages_one_statement_can_check(
    runtime: Runtime, blobs: Path
) -> None:
    """Each shard folder holds about 1/256 of the blobs: at a few million files, more keys than one statement may
    bind (SQLite and PostgreSQL take about 32,000 parameters, and a page is checked against three tables). A page
    of the listing stays bounded however full a shard is."""
    shard = blobs / "ab"
    shard.mkdir(parents=True)
    crowd = 11_000
    then = time.time() - (ORPHAN_AGE + HOUR).total_seconds()
    for n in range(crowd):
        path = shard / f"ab{n:030x}"
        path.touch()
        os.utime(path, (then, then))
    pages = [len(page) async for page in runtime.storage.scan()]
    report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)
    assert report.orphans == crowd
    assert stored_files(blobs) == []
    assert sum(pages) == crowd
    assert max(pages) <= 1000
