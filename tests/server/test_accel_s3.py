"""LAPSE_DELIVERY=accel on S3 storage through a real nginx (deploy/nginx/lapse.conf with lapse-s3-*.conf), a real
`lapse serve` and a real Ceph RGW.

Lapse judges and counts each download, then nginx fetches the bytes from the store with the presigned GET that
Lapse put in X-Accel-Redirect. The points: the client gets Lapse's answer (its headers, each once, never the
store's), the store gets nothing of the client's, and whatever nginx and the store would judge otherwise Lapse
sends itself. Lapse reaches the store through one forwarder (`line`), nginx through another that records each
request head (`store`): both are cut to take the store down. The tests' nginx access log names what answered: the
download's own path when Lapse sent the bytes, else the object's path at the store.
"""

import asyncio
import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from lapse.storage.base import SMALL_BLOB
from tests.process import LapseServer, fresh_database
from tests.s3.conftest import BUCKET, s3_client
from tests.s3.forwarder import ForwarderThread
from tests.s3.rgw import Rgw
from tests.server.api import bearer, downloads_counted, eventually, fresh_client, shared_link
from tests.server.nginx import Nginx, StoreProxy
from tests.server.services import serving

pytestmark = [pytest.mark.anyio, pytest.mark.server]

SIZE = 3 * 1024 * 1024 + 17  # bigger than a socket buffer, not a multiple of anything
DATA = os.urandom(SIZE)
SMALL = os.urandom(SMALL_BLOB // 2)  # kept in Lapse's memory once read: no store call before counting
PREFIX = f"accel-{secrets.token_hex(4)}/"  # this module's own, in the worker's shared RGW
SECRET_HEADERS = ("authorization", "cookie", "lapse-grant", "if-range", "if-match", "if-none-match")


@dataclass(frozen=True)
class Proxied:
    lapse: LapseServer
    nginx: Nginx
    key: str
    rgw: Rgw
    line: ForwarderThread  # Lapse → store
    store: ForwarderThread  # nginx → store, recording

    @property
    def url(self) -> str:
        return self.nginx.url


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, rgw: Rgw) -> Iterator[Proxied]:
    root = tmp_path_factory.mktemp("accel-s3")
    line = store = None
    try:
        line, store = ForwarderThread(rgw.port), ForwarderThread(rgw.port, record=True)
        line.start()
        store.start()
        nowhere = str(root / "no-aws-config")
        env = {
            "LAPSE_DELIVERY": "accel",
            "LAPSE_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
            "LAPSE_S3_ENDPOINT": line.endpoint,
            "LAPSE_S3_REGION": rgw.region,
            "LAPSE_S3_PATH_STYLE": "true",
            "AWS_ACCESS_KEY_ID": rgw.access_key,
            "AWS_SECRET_ACCESS_KEY": rgw.secret_key,
            "AWS_CONFIG_FILE": nowhere,
            "AWS_SHARED_CREDENTIALS_FILE": nowhere,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        with fresh_database("sqlite", root) as url:
            # One worker: the store-down test waits for its one cached health answer to turn red.
            lapse = LapseServer(root, url, workers=1, env=env)
            key = lapse.create_key("accel-s3-tests")
            with serving(lapse):
                signed_host = f"127.0.0.1:{line.port}"  # LAPSE_S3_ENDPOINT's: the URLs are signed for it
                nginx = Nginx(root / "nginx", lapse, store=StoreProxy(port=store.port, signed_host=signed_host))
                nginx.start()
                try:
                    yield Proxied(lapse, nginx, key, rgw, line, store)
                finally:
                    nginx.stop()
                    print(nginx.logs())
    finally:
        for forwarder in (line, store):
            if forwarder is not None:
                forwarder.close()


async def shared_file(proxied: Proxied, data: bytes = DATA, **link: Any) -> dict[str, Any]:
    return await shared_link(proxied.url, proxied.key, data, **link)


async def downloads(proxied: Proxied, link: dict[str, Any]) -> int:
    return await downloads_counted(proxied.url, proxied.key, link)


async def answered_by(proxied: Proxied, path: str, count: int) -> list[str]:
    """Who sent each of the first `count` answers to `path`: "lapse", or "store" (nginx proxying it)."""
    uris = await anyio.to_thread.run_sync(lambda: proxied.nginx.answered_by(path, count=count))
    return ["lapse" if uri == path else "store" if uri.startswith(f"/{BUCKET}/{PREFIX}") else uri for uri in uris][
        :count
    ]


@dataclass(frozen=True)
class StoreRequest:
    line: str  # GET /bucket/key?query HTTP/1.1
    headers: dict[str, str]  # by lower-case name

    @property
    def path(self) -> str:
        return self.line.split()[1].partition("?")[0]


def store_requests(proxied: Proxied, since: int = 0) -> list[StoreRequest]:
    """The requests nginx made to the store, from the `since`-th on."""
    found = []
    for head in proxied.store.request_heads()[since:]:
        first, *fields = head.decode("latin-1").split("\r\n")
        headers = {}
        for field in fields:
            name, _, value = field.partition(":")
            headers[name.strip().lower()] = value.strip()
        found.append(StoreRequest(first, headers))
    return found


async def test_whole_and_range_come_from_the_store_with_lapses_headers_each_once(proxied: Proxied) -> None:
    with anyio.fail_after(60):
        async with fresh_client(proxied.url) as client:
            uploaded = await client.put(
                "/api/v1/files/picture.png",
                params={"max_downloads": 1},
                content=DATA,
                headers=bearer(proxied.key) | {"Content-Type": "image/png"},
            )
            assert uploaded.status_code == 201, uploaded.text
            link = uploaded.json()["link"]
            path = httpx.URL(link["url"]).path
            head = await client.head(path)  # Lapse's own answer, never counted
            asked = len(proxied.store.request_heads())

            whole = await client.get(path)
            assert whole.status_code == 200
            assert whole.content == DATA
            assert whole.headers["content-length"] == str(SIZE)
            grant = whole.headers["lapse-grant"]
            part = await client.get(path, headers={"Range": "bytes=100-1999", "Lapse-Grant": grant})
            assert part.status_code == 206
            assert part.content == DATA[100:2000]
            assert part.headers["content-range"] == f"bytes 100-1999/{SIZE}"
            assert (await client.get(path)).status_code == 410

    for response in (whole, part):
        fields = response.headers
        # Each once: the store's copies are hidden, or signed to equal Lapse's (Content-Type).
        assert fields.get_list("content-type") == ["image/png"]  # the served type, not the store's
        assert fields.get_list("content-disposition") == [head.headers["content-disposition"]]
        assert fields.get_list("cache-control") == ["private, no-store"]
        assert fields.get_list("etag") == [f'"{hashlib.sha256(DATA).hexdigest()}"']
        assert fields.get_list("last-modified") == [head.headers["last-modified"]]
        assert fields.get_list("content-security-policy") == ["sandbox"]
        assert fields.get_list("x-content-type-options") == ["nosniff"]
        assert fields.get_list("referrer-policy") == ["no-referrer"]
        assert fields.get_list("accept-ranges") == ["bytes"]
        assert not [name for name in fields if name.startswith(("x-amz", "x-rgw", "x-accel"))], fields
    assert whole.headers.get_list("lapse-grant") == [grant]
    assert len(whole.headers.get_list("set-cookie")) == 1
    assert "lapse-grant" not in part.headers  # the resume under the grant spent nothing, so granted nothing new

    assert await downloads(proxied, link) == 1
    assert await answered_by(proxied, path, 3) == ["lapse", "store", "store"]  # the HEAD, then the two GETs
    fetched = store_requests(proxied, asked)
    assert [request.headers.get("range") for request in fetched] == [None, "bytes=100-1999"]
    for request in fetched:
        assert request.line.startswith(f"GET /{BUCKET}/{PREFIX}")
        assert "X-Amz-Signature=" in request.line
        assert "response-content-type=image%2Fpng" in request.line
        assert "response-content-disposition" not in request.line  # nginx keeps Lapse's: it would come twice


async def test_nothing_of_the_clients_reaches_the_store(proxied: Proxied) -> None:
    link = await shared_file(proxied, max_downloads=1)
    path = link["path"]
    async with fresh_client(proxied.url) as client:
        head = await client.head(path)
        first = await client.get(path, headers={"Authorization": "Basic c2VjcmV0OnNlY3JldA==", "Cookie": "a=b"})
        assert (first.status_code, first.content == DATA) == (200, True)
        asked = len(proxied.store.request_heads())
        earlier = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
        resumed = await client.get(
            path,
            headers={
                "Range": "bytes=10-19",
                "If-Range": head.headers["etag"],
                "If-None-Match": '"stale"',
                "If-Modified-Since": earlier,
                "Lapse-Grant": first.headers["lapse-grant"],
                "Cookie": f"lapse_grant={first.headers['lapse-grant']}; other=1",
                "Authorization": "Bearer lapse_not-a-key",
                "X-Forwarded-For": "203.0.113.9",
                "User-Agent": "secret-agent",
            },
        )
        assert (resumed.status_code, resumed.content) == (206, DATA[10:20])
    fetched = store_requests(proxied, asked - 1)  # the first GET's, and the resume's
    assert len(fetched) == 2
    for request in fetched:
        assert set(request.headers) <= {"host", "range"}, request.headers
        assert request.headers["host"] == f"127.0.0.1:{proxied.line.port}"  # the signed host
        assert request.line.startswith("GET ")
    assert fetched[1].headers["range"] == "bytes=10-19"
    sent = b"\r\n\r\n".join(proxied.store.request_heads()).lower()
    assert b"secret" not in sent
    assert b"203.0.113.9" not in sent
    assert await downloads(proxied, link) == 1


async def test_the_store_locations_are_not_reachable_from_outside(proxied: Proxied) -> None:
    """Not even with a valid presigned request for an object."""
    data = os.urandom(1000)
    await shared_file(proxied, data, max_downloads=1)
    plain = s3_client(replace(proxied.rgw, endpoint=proxied.line.endpoint))  # signed for the host Lapse signs for
    key = next(
        item["Key"]
        for item in plain.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"]
        if item["Size"] == len(data) and plain.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() == data
    )
    signed = httpx.URL(plain.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300))
    request = f"{BUCKET}/{key}?{signed.query.decode()}"
    async with fresh_client(proxied.url) as client:
        for target in (
            f"/_lapse/s3/whole/{request}",
            f"/_lapse/s3/ranges/{request}",
            f"/_lapse/s3/{request}",
            f"/_lapse/s3/whole/../{request}",
        ):
            response = await client.get(target)
            assert response.status_code == 404, target
            assert data not in response.content


async def test_what_the_store_would_judge_otherwise_lapse_sends_itself_counted_once(proxied: Proxied) -> None:
    link = await shared_file(proxied, expires_in=3600)  # unlimited: every GET without a grant counts
    path = link["path"]
    with anyio.fail_after(120):
        async with fresh_client(proxied.url) as client:
            head = await client.head(path)
            etag, last_modified = head.headers["etag"], head.headers["last-modified"]
            later = format_datetime(datetime(2100, 1, 1, tzinfo=UTC), usegmt=True)
            earlier = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)

            async def get(**headers: str) -> httpx.Response:
                before = await downloads(proxied, link)
                response = await client.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()})
                assert await downloads(proxied, link) == before + 1, (headers, response.status_code)
                assert response.headers.get_list("etag") == [etag], headers
                return response

            # Lapse's own: nginx would judge these against no validator at all, the store against its MD5.
            for headers in ({"If-Match": etag}, {"If-Match": "*"}, {"If-Unmodified-Since": later}):
                held = await get(**headers)
                assert (held.status_code, held.content == DATA) == (200, True), headers
            several = await get(Range="bytes=0-9,20-29")  # the store would send only the first (RGW)
            assert (several.status_code, several.content == DATA) == (200, True)  # streamed: whole, as RFC allows
            ranged_if_match = await get(Range="bytes=5-9", If_Match=etag)
            assert (ranged_if_match.status_code, ranged_if_match.content) == (206, DATA[5:10])

            # The store's: If-Range judged by Lapse alone (the store would ignore it), the store asked for the
            # range or the whole file accordingly.
            matching = await get(Range="bytes=100-199", If_Range=etag)
            assert (matching.status_code, matching.content) == (206, DATA[100:200])
            by_date = await get(Range="bytes=-10", If_Range=last_modified)
            assert (by_date.status_code, by_date.content) == (206, DATA[-10:])
            changed = await get(Range="bytes=100-199", If_Range='"an-older-version"')
            assert (changed.status_code, changed.content == DATA) == (200, True)
            dated = await get(Range="bytes=100-199", If_Range=earlier)
            assert (dated.status_code, dated.content == DATA) == (200, True)
            stale = await get(If_None_Match='"stale"', If_Modified_Since=earlier)
            assert (stale.status_code, stale.content == DATA) == (200, True)
            malformed = await get(Range="bytes=9-1")
            assert (malformed.status_code, malformed.content == DATA) == (200, True)

    assert await answered_by(proxied, path, 12) == ["lapse"] * 6 + ["store"] * 6  # the HEAD, then as above


async def test_exactly_one_full_body_for_a_one_time_link_under_fifty_clients(proxied: Proxied) -> None:
    link = await shared_file(proxied, max_downloads=1)
    path = link["path"]

    async def one() -> tuple[int, bool]:
        async with fresh_client(proxied.url) as client:
            response = await client.get(path)
            return response.status_code, response.content == DATA

    with anyio.fail_after(180):
        answers = await asyncio.gather(*(one() for _ in range(50)))
    assert sorted(answers) == [(200, True)] + [(410, False)] * 49
    assert await downloads(proxied, link) == 1
    assert "store" in await answered_by(proxied, path, 50)


async def test_a_password_post_reaches_the_store_as_a_bare_get(proxied: Proxied) -> None:
    with anyio.fail_after(60):
        async with fresh_client(proxied.url) as client:
            uploaded = await client.put("/api/v1/files/locked.bin", content=DATA, headers=bearer(proxied.key))
            made = await client.post(
                f"/api/v1/files/{uploaded.json()['id']}/links",
                json={"max_downloads": 1, "password": "open sesame"},
                headers=bearer(proxied.key),
            )
            assert made.status_code == 201, made.text
            link = made.json()
            path = httpx.URL(link["url"]).path
            asked = len(proxied.store.request_heads())
            response = await client.post(path, data={"password": "open sesame"})
            assert (response.status_code, response.content == DATA) == (200, True)
    assert await downloads(proxied, link) == 1
    assert await answered_by(proxied, path, 1) == ["store"]
    assert b"sesame" not in b"".join(proxied.store.request_heads()[asked:])  # the form stayed behind
    (fetched,) = store_requests(proxied, asked)  # one head, and nothing after it
    assert fetched.line.startswith("GET ")
    assert set(fetched.headers) == {"host"}


def readiness(proxied: Proxied) -> int:
    """/readyz on Lapse's own port: its one worker's cached answer on the store's health."""
    with httpx.Client(base_url=proxied.lapse.url, trust_env=False, timeout=30) as client:
        return client.get("/readyz").status_code


async def test_while_the_store_is_down_downloads_answer_503_before_counting(proxied: Proxied) -> None:
    small = await shared_file(proxied, SMALL, max_downloads=2)
    large = await shared_file(proxied, max_downloads=1)
    async with fresh_client(proxied.url) as client:
        first = await client.get(small["path"])  # read once: from now on Lapse has the bytes in memory
        assert (first.status_code, first.content) == (200, SMALL)

        await anyio.to_thread.run_sync(proxied.line.stop)
        await anyio.to_thread.run_sync(proxied.store.stop)
        try:
            with anyio.fail_after(60):
                await eventually(
                    lambda: readiness(proxied) == 503, interval=0.2
                )  # the health check's cached answer turns red
            for link in (small, large):
                refused = await client.get(link["path"])
                assert refused.status_code == 503, link
                assert refused.headers["retry-after"]
                assert refused.headers["content-type"] == "application/problem+json"
        finally:
            await anyio.to_thread.run_sync(proxied.line.start)
            await anyio.to_thread.run_sync(proxied.store.start)
        assert await downloads(proxied, small) == 1
        assert await downloads(proxied, large) == 0

        with anyio.fail_after(60):
            await eventually(lambda: readiness(proxied) == 200, interval=0.2)
        again = await client.get(small["path"])
        assert (again.status_code, again.content) == (200, SMALL)
        whole = await client.get(large["path"])
        assert (whole.status_code, whole.content == DATA) == (200, True)
    assert await downloads(proxied, small) == 2
    assert await downloads(proxied, large) == 1


async def test_no_presigned_request_in_nginxs_or_lapses_access_logs(proxied: Proxied) -> None:
    link = await shared_file(proxied, max_downloads=2)
    asked = len(proxied.store.request_heads())
    site_log = proxied.nginx.root / "site.access.log"  # the shipped format
    lapse_log = proxied.lapse.stdout_path
    logged = len(site_log.read_text().splitlines())
    answered = lapse_log.read_text().count('"GET /d/… HTTP/1.1"')
    async with fresh_client(proxied.url) as client:
        assert (await client.get(link["path"])).status_code == 200
        assert (await client.get(link["path"], headers={"Range": "bytes=0-9"})).status_code == 206
    await answered_by(proxied, link["path"], 2)  # both logged by nginx
    fetched = store_requests(proxied, asked)
    assert len(fetched) == 2
    secrets = {request.path for request in fetched}  # the object's path, and each signature
    secrets |= {request.line.split("X-Amz-Signature=")[1].split()[0] for request in fetched}
    with anyio.fail_after(30):  # nginx and Lapse write a line once an answer is done
        await eventually(lambda: len(site_log.read_text().splitlines()) >= logged + 2)
        await eventually(lambda: lapse_log.read_text().count('"GET /d/… HTTP/1.1"') >= answered + 2)  # redacted
    logs = [site_log, lapse_log, proxied.lapse.stderr_path]
    texts = {path: path.read_text(errors="replace") for path in logs}
    for log_path, text in texts.items():
        assert "X-Amz-" not in text, log_path
        for secret in secrets:
            assert secret not in text, (log_path, secret)


async def test_ranges_past_the_end_and_an_empty_file_come_from_the_store_as_lapse_decided(proxied: Proxied) -> None:
    link = await shared_file(proxied, expires_in=3600)
    empty = await shared_file(proxied, b"", expires_in=3600)
    async with fresh_client(proxied.url) as client:
        cases = {
            f"bytes={SIZE - 5}-{SIZE * 2}": (SIZE - 5, SIZE - 1),
            f"bytes=-{SIZE * 2}": (0, SIZE - 1),
            "bytes=0-": (0, SIZE - 1),
        }
        for value, (start, end) in cases.items():
            response = await client.get(link["path"], headers={"Range": value})
            assert response.status_code == 206, value
            assert response.headers["content-range"] == f"bytes {start}-{end}/{SIZE}", value
            assert response.content == DATA[start : end + 1], value
        nothing = await client.get(empty["path"])
        assert (nothing.status_code, nothing.content, nothing.headers["content-length"]) == (200, b"", "0")
        assert nothing.headers.get_list("etag") == [f'"{hashlib.sha256(b"").hexdigest()}"']
    assert await answered_by(proxied, link["path"], 3) == ["store"] * 3
    assert await answered_by(proxied, empty["path"], 1) == ["store"]
    assert await downloads(proxied, link) == 3
