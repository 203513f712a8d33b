"""Lapse on an S3 bucket (a real Ceph RGW), through the whole app: uploads land in the bucket, downloads are sent
inline or redirected to a presigned URL, each counted exactly once, and a store that goes away answers 503 with
nothing counted."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager

from lapse.app import create_app
from lapse.delivery.serving import content_disposition
from lapse.runtime import open_runtime
from lapse.settings import Settings
from lapse.storage.base import SMALL_BLOB
from tests.helpers import ApiClient, Browser, Store, downloads_of, lapse_answer, new_key, stored_files
from tests.s3.conftest import BUCKET, PART_SIZE
from tests.s3.forwarder import Forwarder
from tests.s3.rgw import Rgw

pytestmark = pytest.mark.anyio

BODY = os.urandom(PART_SIZE + 54321)  # a multipart object, streamed on the way out
SMALL = os.urandom(SMALL_BLOB // 2)  # sent from memory


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, ApiClient]]:
    async with LifespanManager(create_app(settings, sweep=False)) as manager, open_runtime(settings) as keys:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, ApiClient(http, await new_key(keys, "alice"))


def objects(s3: Any, prefix: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


async def remaining(http: httpx.AsyncClient, path: str) -> str:
    head = await http.head(path)
    assert head.status_code == 200
    return head.headers["lapse-downloads-remaining"]


async def test_uploads_land_in_the_bucket_and_download_inline(s3_settings: Settings, s3: Any, prefix: str) -> None:
    async with app_client(s3_settings) as (http, alice):
        link = await alice.share(BODY, max_downloads=2)
        small = await alice.share(SMALL, max_downloads=1)
        assert len(objects(s3, prefix)) == 2
        assert stored_files(s3_settings.data_dir / "blobs") == []  # nothing on the local disk

        assert await remaining(http, link["path"]) == "2"  # HEAD counts nothing
        whole = await http.get(link["path"])
        assert (whole.status_code, whole.content) == (200, BODY)
        assert whole.headers["content-length"] == str(len(BODY))
        grant = {"lapse-grant": whole.headers["lapse-grant"]}
        http.cookies.clear()
        start, end = PART_SIZE - 10, PART_SIZE + 9  # across the parts' seam
        part = await http.get(link["path"], headers=grant | {"range": f"bytes={start}-{end}"})
        assert (part.status_code, part.content) == (206, BODY[start : end + 1])
        assert part.headers["content-range"] == f"bytes {start}-{end}/{len(BODY)}"
        assert await remaining(http, link["path"]) == "1"  # the ranged resume under the grant was free

        got = await http.get(small["path"])
        assert (got.status_code, got.content) == (200, SMALL)
        http.cookies.clear()
        assert (await http.get(small["path"])).status_code == 410


async def test_redirect_points_at_a_presigned_url_the_store_honours(
    s3_settings: Settings, rgw: Rgw, prefix: str
) -> None:
    settings = s3_settings.model_copy(
        update={"delivery": "redirect", "grant_ttl": timedelta(seconds=40), "redirect_ttl": timedelta(seconds=90)}
    )
    async with app_client(settings) as (http, alice):
        file = await alice.upload(BODY, name="page.html", content_type="text/html")
        link = await alice.link(file["id"], max_downloads=2)
        path = urlsplit(link["url"]).path
        head = await http.head(path)
        assert head.status_code == 200  # HEAD is never redirected
        assert head.headers["lapse-downloads-remaining"] == "2"

        before = datetime.now(UTC).replace(microsecond=0)
        moved = await http.get(path)
        assert moved.status_code == 302
        location = moved.headers["location"]
        assert location.startswith(f"{rgw.endpoint}/{BUCKET}/{prefix}")
        query = dict(parse_qsl(urlsplit(location).query))
        signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%S%z")
        assert signed_at >= before
        assert int(query["X-Amz-Expires"]) <= 40  # never outlives the grant (40 s here, shorter than 90)
        assert await remaining(http, path) == "1"

        async with httpx.AsyncClient() as plain:  # a new request from scratch, as a browser follows it
            fetched = await plain.get(location)
            assert (fetched.status_code, fetched.content) == (200, BODY)
            assert fetched.headers["content-type"] == "application/octet-stream"  # html is never served as html
            assert fetched.headers["content-disposition"] == content_disposition("page.html")
            assert fetched.headers["cache-control"] == "private, no-store"

            grant = {"lapse-grant": moved.headers["lapse-grant"]}
            http.cookies.clear()
            again = await http.get(path, headers=grant | {"range": "bytes=10-19"})
            assert again.status_code == 302  # a resume gets a fresh URL, free
            part = await plain.get(again.headers["location"], headers={"range": "bytes=10-19"})
            assert (part.status_code, part.content) == (206, BODY[10:20])
        assert await remaining(http, path) == "1"


@pytest.mark.parametrize("delivery", ["inline", "redirect"])
async def test_a_store_that_went_away_answers_503_and_counts_nothing(
    s3_settings: Settings, rgw: Rgw, delivery: str
) -> None:
    line = Forwarder(rgw.port)
    await line.start()
    settings = s3_settings.model_copy(update={"s3_endpoint": line.endpoint, "delivery": delivery})
    try:
        async with app_client(settings) as (http, alice):
            link = await alice.share(BODY, max_downloads=1)
            await line.stop()
            for attempt in (http.get(link["path"]), http.head(link["path"])):
                refused = await attempt
                assert refused.status_code == 503
                assert refused.headers["retry-after"]
                assert refused.headers["content-type"] == "application/problem+json"
            upload = await alice.request("POST", "/api/v1/files", files={"file": ("a.bin", SMALL, "text/plain")})
            assert upload.status_code == 503
            assert upload.headers["retry-after"]

            await line.start()  # the store is back: the one download was never spent
            got = await http.get(link["path"])
            assert got.status_code == (302 if delivery == "redirect" else 200)
            http.cookies.clear()
            assert (await http.get(link["path"])).status_code == 410
    finally:
        await line.stop()


async def test_a_redirect_never_outlives_the_grant_it_is_under(s3_settings: Settings, rgw: Rgw, prefix: str) -> None:
    """The URL lives min(LAPSE_REDIRECT_TTL, the grant's remaining life): a new grant's whole life, or what is left
    of a presented one — here 5 s, while the TTL would allow 90."""
    settings = s3_settings.model_copy(
        update={"delivery": "redirect", "grant_ttl": timedelta(seconds=30), "redirect_ttl": timedelta(seconds=90)}
    )
    store = Store(f"{rgw.endpoint}/{BUCKET}/{prefix}", redirect_ttl=settings.redirect_ttl, grant_ttl=settings.grant_ttl)
    async with (
        LifespanManager(create_app(settings, sweep=False)) as manager,
        open_runtime(settings) as runtime,
        Browser(store).client(app=manager.app) as browser,  # checks every redirect against its grant
    ):
        alice = ApiClient(browser, await new_key(runtime, "alice"))
        link = await alice.share(SMALL, max_downloads=1)
        first = await browser.get(link["path"])
        assert (first.status_code, first.content) == (200, SMALL)
        assert expires_in(lapse_answer(first)) <= 30  # the new grant's life

        browser.cookies.clear()
        short = runtime.grants.sign(link["id"], datetime.now(UTC) + timedelta(seconds=5))
        resumed = await browser.get(link["path"], headers={"lapse-grant": short, "range": "bytes=5-"})
        assert (resumed.status_code, resumed.content) == (206, SMALL[5:])
        assert 1 <= expires_in(lapse_answer(resumed)) <= 5
        assert await downloads_of(alice, link) == 1  # the resume was free


def expires_in(redirect: httpx.Response) -> int:
    assert redirect.status_code == 302
    return int(dict(parse_qsl(urlsplit(redirect.headers["location"]).query))["X-Amz-Expires"])
