"""Nothing left behind in the bucket (a real Ceph RGW), on SQLite and PostgreSQL: a killed upload leaves no row,
and after a sweep no object and no unfinished multipart upload; a delete cut short by a crash is finished from its
tombstone; the safety-net listing removes old orphans only, on the lease holder only, a page at a time."""

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from asgi_lifespan import LifespanManager

from lapse.app import create_app
from lapse.db.base import utc_now
from lapse.db.leases import LeaseRepository
from lapse.db.models import ApiKey, File
from lapse.db.session import transaction
from lapse.files import service as files_service
from lapse.files.repository import IntentRepository
from lapse.runtime import Runtime, open_runtime
from lapse.settings import Settings
from lapse.storage import new_key
from lapse.sweeper import ORPHAN_AGE, SAFETY_NET, STALE_AFTER, sweep_once
from tests.helpers import ApiClient
from tests.helpers import new_key as new_api_key
from tests.outbox import Keys, keys
from tests.process import LapseServer, query
from tests.s3.conftest import BUCKET, PART_SIZE
from tests.s3.forwarder import Forwarder
from tests.s3.rgw import Rgw
from tests.server.api import eventually

pytestmark = pytest.mark.anyio
HOUR = timedelta(hours=1)
NOTHING = Keys(files=set(), intents=set(), tombstones=set())


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[tuple[Runtime, ApiClient]]:
    async with LifespanManager(create_app(settings, sweep=False)) as manager, open_runtime(settings) as runtime:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield runtime, ApiClient(http, await new_api_key(runtime, "alice"))


def objects(s3: Any, prefix: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"].removeprefix(prefix) for item in listed}


def unfinished(s3: Any, prefix: str) -> set[str]:
    listed = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    return {item["Key"].removeprefix(prefix) for item in listed}


def parts_sent(s3: Any, prefix: str) -> bool:
    """Whether some multipart upload under the prefix has at least one part stored."""
    for upload in s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []):
        if s3.list_parts(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]).get("Parts"):
            return True
    return False


def paused_body(first: bytes, rest: bytes, pause: Callable[[], Awaitable[None]]) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        yield first
        await pause()  # the first part is on its way: the uploader sends it while it receives the next
        yield rest

    return body()


async def test_a_killed_upload_leaves_no_row_and_after_a_sweep_nothing_in_the_bucket(
    s3_settings: Settings, s3: Any, prefix: str, tmp_path: Path
) -> None:
    env = {
        "LAPSE_STORAGE_URL": s3_settings.storage_url,
        "LAPSE_S3_ENDPOINT": str(s3_settings.s3_endpoint),
        "LAPSE_S3_REGION": s3_settings.s3_region,
        "LAPSE_S3_PATH_STYLE": "true",
        "LAPSE_S3_PART_SIZE": str(PART_SIZE),
        "LAPSE_MAX_UPLOAD_SIZE": str(64 * 1024 * 1024),
        "LAPSE_SWEEP_INTERVAL": "1h",  # the test sweeps, once, itself
    }
    root = tmp_path / "server"
    root.mkdir()
    server = LapseServer(root, s3_settings.database_url, workers=1, env=env)
    key = await anyio.to_thread.run_sync(server.create_key, "uploader")
    auth = {"authorization": f"Bearer {key}"}
    await anyio.to_thread.run_sync(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=auth, trust_env=False) as client:
            kept = await client.put("/api/v1/files/kept.bin", content=os.urandom(PART_SIZE + 1000))
            assert kept.status_code == 201, kept.text
        [kept_key] = objects(s3, prefix)
        total = 4 * PART_SIZE
        head = (
            f"PUT /api/v1/files/killed.bin HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {total}\r\n\r\n"
        ).encode()
        with anyio.fail_after(90):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(head)
                await stream.send(os.urandom(2 * PART_SIZE))
                await eventually(lambda: parts_sent(s3, prefix))
                status = await anyio.to_thread.run_sync(server.kill)
        assert status == -9, f"lapse serve exited with {status} before the kill"
    finally:
        await anyio.to_thread.run_sync(server.stop)

    [killed] = unfinished(s3, prefix)
    assert killed != kept_key
    rows = await query(s3_settings.database_url, "SELECT storage_key FROM files")
    assert rows == [(kept_key,)]  # no row for the killed upload
    async with open_runtime(s3_settings) as runtime:
        assert await keys(runtime.sessions) == Keys(files={kept_key}, intents={killed}, tombstones=set())
        later = utc_now() + STALE_AFTER + HOUR
        report = await sweep_once(runtime.sessions, runtime.storage, grace=30 * ORPHAN_AGE, now=later)
        assert report.intents == 1
        assert await keys(runtime.sessions) == Keys(files={kept_key}, intents=set(), tombstones=set())
    assert unfinished(s3, prefix) == set()
    assert objects(s3, prefix) == {kept_key}  # the other file is untouched


async def test_a_crash_between_the_row_delete_and_the_blob_delete_loses_nothing(
    s3_settings: Settings, s3: Any, prefix: str
) -> None:
    async with app_client(s3_settings) as (runtime, alice):
        file = await alice.upload(b"to be deleted")
        async with transaction(runtime.sessions) as session:  # the route's transaction, committed; then the crash
            row = await session.get(File, file["id"])
            assert row is not None
            owner = await session.get(ApiKey, row.owner_id)
            assert owner is not None
            key = await files_service.delete_file(session, owner=owner, file_id=file["id"])
        assert await keys(runtime.sessions) == Keys(files=set(), intents=set(), tombstones={key})
        assert objects(s3, prefix) == {key}
        report = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)
        assert report.tombstones == 1
        assert await keys(runtime.sessions) == NOTHING
        assert objects(s3, prefix) == set()
        # An owner's delete takes the bytes at once, and its tombstone with them.
        other = await alice.upload(b"deleted by its owner")
        assert (await alice.request("DELETE", f"/api/v1/files/{other['id']}")).status_code == 204
        assert objects(s3, prefix) == set()
        assert await keys(runtime.sessions) == NOTHING


async def test_an_upload_has_an_intent_while_it_runs_and_none_after(
    s3_settings: Settings, s3: Any, prefix: str
) -> None:
    async with app_client(s3_settings) as (runtime, alice):
        seen: list[tuple[Keys, set[str]]] = []

        async def look() -> None:
            await eventually(lambda: parts_sent(s3, prefix))  # the part travels while the body goes on
            seen.append((await keys(runtime.sessions), unfinished(s3, prefix)))

        body = paused_body(os.urandom(PART_SIZE), os.urandom(1000), look)
        response = await alice.request("PUT", "/api/v1/files/big.bin", content=body)
        assert response.status_code == 201, response.text
        [(during, uploading)] = seen
        assert (during.files, during.tombstones) == (set(), set())
        assert during.intents == uploading  # the intent names the multipart upload in progress
        assert len(uploading) == 1
        assert await keys(runtime.sessions) == Keys(files=uploading, intents=set(), tombstones=set())
        assert objects(s3, prefix) == uploading
        assert unfinished(s3, prefix) == set()


async def test_a_failed_upload_leaves_no_intent_no_object_and_no_parts(
    s3_settings: Settings, s3: Any, prefix: str
) -> None:
    async with app_client(s3_settings) as (runtime, alice):
        seen: list[set[str]] = []

        async def look() -> None:
            await eventually(lambda: parts_sent(s3, prefix))  # the part travels while the body goes on
            seen.append(unfinished(s3, prefix))

        rest = os.urandom(s3_settings.max_upload_size)
        response = await alice.request(
            "PUT", "/api/v1/files/big.bin", content=paused_body(os.urandom(PART_SIZE), rest, look)
        )
        assert response.status_code == 413
        assert len(seen[0]) == 1  # a part had gone up
        assert await keys(runtime.sessions) == NOTHING
        assert objects(s3, prefix) == set()
        assert unfinished(s3, prefix) == set()


async def test_an_upload_whose_intent_the_sweeper_took_is_aborted_and_not_kept(
    s3_settings: Settings, s3: Any, prefix: str
) -> None:
    async with app_client(s3_settings) as (runtime, alice):

        async def sweep_as_if_much_later() -> None:
            later = utc_now() + 2 * STALE_AFTER
            assert (await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=later)).intents == 1
            assert unfinished(s3, prefix) == set()  # aborted under the upload's feet

        async def once_a_part_is_up() -> None:
            await eventually(lambda: parts_sent(s3, prefix))  # the part travels while the body goes on
            await sweep_as_if_much_later()

        body = paused_body(os.urandom(PART_SIZE), os.urandom(1000), once_a_part_is_up)
        response = await alice.request("PUT", "/api/v1/files/slow.bin", content=body)
        assert response.status_code == 503, response.text
        small = paused_body(b"a", b"b", sweep_as_if_much_later)  # one PutObject, after its intent was taken
        response = await alice.request("PUT", "/api/v1/files/small.bin", content=small)
        assert response.status_code == 503, response.text
        assert await keys(runtime.sessions) == NOTHING
        assert objects(s3, prefix) == set()
        assert unfinished(s3, prefix) == set()


async def test_the_safety_net_removes_old_orphans_on_the_lease_holder_a_page_at_a_time(
    s3_settings: Settings, s3: Any, prefix: str
) -> None:
    async with app_client(s3_settings) as (runtime, alice):
        await alice.upload(b"a file")
        [kept] = (await keys(runtime.sessions)).files
        orphans = {new_key() for _ in range(5)}
        for orphan in orphans:
            s3.put_object(Bucket=BUCKET, Key=prefix + orphan, Body=b"junk")
        stray = prefix + "notes.txt"  # not a name we make: never ours to delete
        s3.put_object(Bucket=BUCKET, Key=stray, Body=b"mine")
        abandoned = new_key()  # an unfinished multipart upload nothing names
        s3.create_multipart_upload(Bucket=BUCKET, Key=prefix + abandoned)
        in_flight = new_key()  # one an upload in progress names
        s3.create_multipart_upload(Bucket=BUCKET, Key=prefix + in_flight)
        async with transaction(runtime.sessions) as session:
            await IntentRepository(session).add(in_flight, now=utc_now() + 10 * ORPHAN_AGE)  # never stale here
        runtime.storage.list_page_size = 2  # type: ignore[attr-defined]
        pages = [page async for page in runtime.storage.scan()]
        assert len(pages) >= 4
        assert max(len(page) for page in pages) <= 2

        now = utc_now()
        young = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=now, holder="replica-a")
        assert (young.scanned, young.orphans, young.temp_files) == (True, 0, 0)  # all too young
        old = now + ORPHAN_AGE + HOUR
        other = await sweep_once(runtime.sessions, runtime.storage, grace=30 * ORPHAN_AGE, now=now, holder="b")
        assert (other.scanned, other.orphans) == (False, 0)  # replica-a holds the lease
        assert objects(s3, prefix) == orphans | {kept, "notes.txt"}
        report = await sweep_once(runtime.sessions, runtime.storage, grace=30 * ORPHAN_AGE, now=old, holder="b")
        assert (report.scanned, report.orphans, report.temp_files) == (True, 5, 1)
        assert objects(s3, prefix) == {kept, "notes.txt"}
        assert unfinished(s3, prefix) == {in_flight}


async def hand_the_safety_net_elsewhere(runtime: Runtime) -> None:
    """Another replica holds the safety net's lease for a day: a pass here lists nothing (these tests are about
    intents and tombstones, and a listing while the store is away would fail the pass)."""
    now = utc_now()
    async with transaction(runtime.sessions) as session:
        assert await LeaseRepository(session).take(SAFETY_NET, holder="elsewhere", now=now, until=now + 30 * HOUR)


async def test_an_upload_the_sweeper_could_not_abort_is_aborted_by_its_next_pass(
    s3_settings: Settings, s3: Any, prefix: str, rgw: Rgw
) -> None:
    """A stale intent whose abort fails (the store away) becomes a tombstone; the next pass must still abort the
    unfinished multipart upload under its key, not only delete an object there."""
    line = Forwarder(rgw.port)
    await line.start()
    settings = s3_settings.model_copy(update={"s3_endpoint": line.endpoint})
    try:
        async with open_runtime(settings) as runtime:
            await hand_the_safety_net_elsewhere(runtime)
            dead = new_key()  # its process died mid-upload: an intent, and parts in the store
            async with transaction(runtime.sessions) as session:
                await IntentRepository(session).add(dead, now=utc_now())
            started = s3.create_multipart_upload(Bucket=BUCKET, Key=prefix + dead)
            s3.upload_part(Bucket=BUCKET, Key=prefix + dead, UploadId=started["UploadId"], PartNumber=1, Body=b"x")
            later = utc_now() + STALE_AFTER + HOUR

            await line.stop()
            away = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=later)
            assert (away.intents, away.tombstones) == (0, 0)
            assert await keys(runtime.sessions) == Keys(files=set(), intents=set(), tombstones={dead})

            await line.start()
            back = await sweep_once(runtime.sessions, runtime.storage, grace=HOUR, now=later)
            assert back.tombstones == 1
            assert await keys(runtime.sessions) == NOTHING
        assert unfinished(s3, prefix) == set()
    finally:
        await line.stop()


async def test_an_upload_the_store_cut_off_leaves_nothing_after_the_next_sweep(
    s3_settings: Settings, s3: Any, prefix: str, rgw: Rgw
) -> None:
    """The store goes away mid-upload: the upload answers 503 and its abort cannot reach the store either. Its key
    must not be forgotten: the next pass, once the store is back, aborts the parts left there."""
    line = Forwarder(rgw.port)
    await line.start()
    settings = s3_settings.model_copy(update={"s3_endpoint": line.endpoint})
    try:
        async with app_client(settings) as (runtime, alice):
            await hand_the_safety_net_elsewhere(runtime)

            async def cut() -> None:
                with anyio.fail_after(60):
                    await eventually(lambda: parts_sent(s3, prefix))
                await line.stop()

            body = paused_body(os.urandom(PART_SIZE), os.urandom(PART_SIZE), cut)
            response = await alice.request("PUT", "/api/v1/files/cut.bin", content=body)
            assert response.status_code == 503, response.text
            assert len(unfinished(s3, prefix)) == 1  # the abort did not reach the store either

            await line.start()
            await sweep_once(runtime.sessions, runtime.storage, grace=HOUR)
            assert await keys(runtime.sessions) == NOTHING
        assert unfinished(s3, prefix) == set()
        assert objects(s3, prefix) == set()
    finally:
        await line.stop()
