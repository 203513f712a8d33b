"""Storage is a plug point: a backend with no local files, no nginx path and URLs of its own is served through the
same download service, counted the same, with no transport asking which backend it is."""

import os
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager

from lapse import runtime
from lapse.app import create_app
from lapse.db.base import utc_now
from lapse.runtime import open_runtime
from lapse.settings import Settings
from lapse.storage import BlobInfo, BlobStat, LocalStorage, OpenBlob, StoredBlob
from lapse.storage.base import SMALL_BLOB
from tests.helpers import ApiClient, new_key

pytestmark = pytest.mark.anyio

BODY = os.urandom(SMALL_BLOB * 4 + 7)  # past what is kept in memory: opened and streamed
STORE = "https://store.invalid/"


class Streamed:
    def __init__(self, inner: OpenBlob) -> None:
        self.inner = inner
        self.closed = False

    def local(self) -> None:
        return None

    def chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        return self.inner.chunks(start, end)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class RemoteLike:
    """A folder's bytes behind the protocol alone: streams only, nothing for nginx, presigned URLs."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalStorage(root)
        self.opened: list[Streamed] = []

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, max_size: int) -> StoredBlob:
        return await self.inner.put(key, chunks, max_size=max_size)

    async def stat(self, key: str) -> BlobStat:
        return await self.inner.stat(key)

    async def open(self, key: str) -> Streamed:
        blob = Streamed(await self.inner.open(key))
        self.opened.append(blob)
        return blob

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def abandon(self, key: str) -> None:
        await self.inner.abandon(key)

    async def scan(self) -> AsyncIterator[list[BlobInfo]]:
        async for page in self.inner.scan():
            yield page

    async def check(self) -> None:
        await self.inner.check()

    def accel_path(self, key: str) -> None:
        return None

    async def accel_proxy(self, key: str, *, until: datetime, content_type: str) -> None:
        return None  # nothing nginx could fetch either

    async def presign(self, key: str, *, until: datetime, filename: str, content_type: str) -> str:
        return f"{STORE}{key}?until={int(until.timestamp())}&type={quote(content_type, safe='')}"

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> list[RemoteLike]:
    made: list[RemoteLike] = []

    def open_storage(settings: Settings) -> RemoteLike:
        made.append(RemoteLike(settings.data_dir / "blobs"))
        return made[-1]

    monkeypatch.setattr(runtime, "open_storage", open_storage)
    return made


async def client(settings: Settings, delivery: str) -> AsyncIterator[tuple[httpx.AsyncClient, ApiClient]]:
    """The app (its store is `stores[0]`) and a key made through another runtime on the same database."""
    settings = settings.model_copy(update={"delivery": delivery})
    async with LifespanManager(create_app(settings, sweep=False)) as manager, open_runtime(settings) as keys:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, ApiClient(http, await new_key(keys, "alice"))


@pytest.mark.parametrize("delivery", ["inline", "accel"])
async def test_a_streaming_backend_is_served_and_counted(
    settings: Settings, stores: list[RemoteLike], delivery: str
) -> None:
    async for http, alice in client(settings, delivery):
        link = await alice.share(BODY, max_downloads=1)
        head = await http.head(link["path"])
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(BODY))
        full = await http.get(link["path"])
        assert full.status_code == 200
        assert full.content == BODY
        assert "x-accel-redirect" not in full.headers  # no nginx path: sent by Lapse
        grant = {"lapse-grant": full.headers["lapse-grant"]}
        part = await http.get(link["path"], headers=grant | {"range": "bytes=100-299"})
        assert (part.status_code, part.content) == (206, BODY[100:300])
        assert part.headers["content-range"] == f"bytes 100-299/{len(BODY)}"
        several = await http.get(link["path"], headers=grant | {"range": "bytes=0-9,20-29"})
        assert (several.status_code, several.content) == (200, BODY)  # a stream goes whole
        http.cookies.clear()
        assert (await http.get(link["path"])).status_code == 410  # one download, spent once
        assert all(blob.closed for blob in stores[0].opened)


async def test_redirect_delivery_counts_then_points_at_the_store(settings: Settings, stores: list[RemoteLike]) -> None:
    async for http, alice in client(settings, "redirect"):
        file = await alice.upload(BODY, name="page.html", content_type="text/html")
        link = await alice.link(file["id"], max_downloads=2)
        link["path"] = httpx.URL(link["url"]).path
        head = await http.head(link["path"])
        assert head.status_code == 200  # never redirected: HEAD answers for Lapse, and counts nothing
        moved = await http.get(link["path"])
        assert moved.status_code == 302
        assert moved.headers["location"].startswith(STORE)
        assert "type=application%2Foctet-stream" in moved.headers["location"]  # the served type, not the stored
        assert moved.headers["cache-control"] == "private, no-store"
        assert moved.headers["lapse-grant"]
        etag = head.headers["etag"]
        http.cookies.clear()
        conditional = await http.get(link["path"], headers={"if-none-match": '"other"'})
        assert conditional.status_code == 200  # the store would judge it by its own validators: sent here
        assert conditional.content == BODY
        assert conditional.headers["etag"] == etag
        http.cookies.clear()
        assert (await http.get(link["path"])).status_code == 410
        assert all(blob.closed for blob in stores[0].opened)


async def test_redirect_after_a_password_form_is_303(settings: Settings, stores: list[RemoteLike]) -> None:
    async for http, alice in client(settings, "redirect"):
        link = await alice.share(BODY, password="pw")
        response = await http.post(link["path"], data={"password": "pw"})
        assert response.status_code == 303
        assert response.headers["location"].startswith(STORE)


async def test_redirect_never_when_the_store_would_judge_the_request_differently(
    settings: Settings, stores: list[RemoteLike]
) -> None:
    """Stores ignore If-Range and read several Range headers their own way; the browser would send both on."""
    async for http, alice in client(settings, "redirect"):
        link = await alice.share(BODY, max_downloads=1)
        first = await http.get(link["path"])
        assert first.status_code == 302
        grant = {"lapse-grant": first.headers["lapse-grant"]}
        stale = await http.get(link["path"], headers=grant | {"range": "bytes=10-19", "if-range": '"not-it"'})
        assert (stale.status_code, stale.content) == (200, BODY)  # Lapse's decision: the whole file, sent here
        two = await http.get(link["path"], headers=[*grant.items(), ("range", "bytes=0-1"), ("range", "bytes=5-6")])
        assert two.status_code != 302
        fresh = await http.get(link["path"], headers=grant | {"range": "bytes=10-19"})
        assert fresh.status_code == 302  # a plain range: the store reads it as Lapse did


async def test_a_presigned_url_never_outlives_the_grant_it_serves(settings: Settings, stores: list[RemoteLike]) -> None:
    async for http, alice in client(settings, "redirect"):
        link = await alice.share(BODY, max_downloads=1)
        assert (await http.get(link["path"])).status_code == 302
        http.cookies.clear()
        ends = utc_now() + timedelta(seconds=10)
        async with open_runtime(settings) as runtime:  # a grant with ten seconds left, as after a long pause
            short = runtime.grants.sign(link["id"], ends)
        resumed = await http.get(link["path"], headers={"lapse-grant": short})
        assert resumed.status_code == 302
        until = int(parse_qs(urlsplit(resumed.headers["location"]).query)["until"][0])
        assert until == int(ends.timestamp())  # the grant's own end, to the second it was signed to
