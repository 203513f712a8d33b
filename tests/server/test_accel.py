"""LAPSE_DELIVERY=accel through a real nginx (deploy/nginx/lapse.conf) and a real `lapse serve`.

The point: once Lapse has counted a download, nginx never contradicts it — no 304 or 412 from nginx, exactly the
ranges Lapse decided — and the internal location that sends blobs cannot be reached from outside. The access log
says which location answered each request (`/_lapse/blobs/whole/…`, `/_lapse/blobs/ranges/…`, or `/d/…` when
Lapse sent the bytes itself).
"""

import asyncio
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from tests.process import LapseServer, fresh_database
from tests.server.api import bearer, downloads_counted, fresh_client, share, shared_link, stored_files
from tests.server.nginx import Nginx
from tests.server.services import serving

pytestmark = [pytest.mark.anyio, pytest.mark.server]

SIZE = 3 * 1024 * 1024 + 17  # bigger than a socket buffer, not a multiple of anything
DATA = os.urandom(SIZE)
WHOLE = "/_lapse/blobs/whole/"
RANGES = "/_lapse/blobs/ranges/"


@dataclass(frozen=True)
class Proxied:
    lapse: LapseServer
    nginx: Nginx
    key: str

    @property
    def url(self) -> str:
        return self.nginx.url


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    root = tmp_path_factory.mktemp("accel")
    with fresh_database("sqlite", root) as url:
        lapse = LapseServer(root, url, workers=2, env={"LAPSE_DELIVERY": "accel"})
        key = lapse.create_key("accel-tests")
        with serving(lapse):
            nginx = Nginx(root / "nginx", lapse)
            nginx.start()
            try:
                yield Proxied(lapse, nginx, key)
            finally:
                nginx.stop()
                print(nginx.logs())


async def shared_file(proxied: Proxied, **link: Any) -> dict[str, Any]:
    return await shared_link(proxied.url, proxied.key, DATA, **link)


async def downloads(proxied: Proxied, link: dict[str, Any]) -> int:
    return await downloads_counted(proxied.url, proxied.key, link)


async def answered_by(proxied: Proxied, path: str, count: int) -> list[str]:
    """Who sent each of the first `count` answers to `path`: "lapse", or nginx's "whole" or "ranges" location."""
    uris = await anyio.to_thread.run_sync(lambda: proxied.nginx.answered_by(path, count=count))
    kinds = {WHOLE: "whole", RANGES: "ranges"}
    return [next((kind for prefix, kind in kinds.items() if uri.startswith(prefix)), uri) for uri in uris][:count]


async def test_a_download_is_counted_once_and_sent_by_nginx_with_our_headers(proxied: Proxied) -> None:
    with anyio.fail_after(60):
        async with fresh_client(proxied.url) as client:
            uploaded = await client.put(
                "/api/v1/files/page.html",
                params={"max_downloads": 1},
                content=DATA,
                headers=bearer(proxied.key) | {"Content-Type": "text/html"},
            )
            assert uploaded.status_code == 201, uploaded.text
            link = uploaded.json()["link"]
            path = httpx.URL(link["url"]).path
            assert link["url"].startswith(proxied.url)  # nginx's Host and port, forwarded

            head = await client.head(path)  # answered by Lapse itself: never counts
            response = await client.get(path)
            assert response.status_code == 200
            assert response.content == DATA
            assert response.headers["content-length"] == str(SIZE)
            assert response.headers["content-type"] == "application/octet-stream"  # declared HTML, never served so
            assert response.headers["content-disposition"].startswith('attachment; filename="page.html"')
            assert response.headers["content-security-policy"] == "sandbox"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["cache-control"] == "private, no-store"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
            assert response.headers["last-modified"] == head.headers["last-modified"]  # ours, not the blob's mtime
            assert response.headers.get_list("etag") == [head.headers["etag"]]
            assert "lapse-grant" in response.headers
            assert "HttpOnly" in response.headers["set-cookie"]
            assert "x-accel-redirect" not in response.headers

            assert (await client.get(path)).status_code == 410
        assert await downloads(proxied, link) == 1
        assert await answered_by(proxied, path, 3) == [path, "whole", path]
        assert (await anyio.to_thread.run_sync(lambda: proxied.nginx.answered_by(path, count=3)))[1] == (
            WHOLE + blob_path(proxied, DATA)
        )


def blob_path(proxied: Proxied, data: bytes) -> str:
    for blob in stored_files(proxied.lapse.blobs):
        if blob.stat().st_size == len(data) and blob.read_bytes() == data:
            return blob.relative_to(proxied.lapse.blobs).as_posix()
    raise AssertionError("no blob holds these bytes")


async def test_nginx_corks_the_connection_before_sending_a_blob(proxied: Proxied) -> None:
    """tcp_nopush must hold for the whole request: every download first matches `location /`, and a location
    without it turns corking off for the rest of the request, the blob's internal location included. Uncorked,
    nginx sent the headers alone and every sendfile piece pushed at once: a 256 MiB blob took ~30 % longer."""
    link = await shared_file(proxied, max_downloads=1)
    path = link["path"]
    with proxied.nginx.tracing("setsockopt,sendfile") as traced:
        async with fresh_client(proxied.url) as client:
            response = await client.get(path)
    assert response.status_code == 200
    assert response.content == DATA
    assert await answered_by(proxied, path, 1) == ["whole"]
    calls = traced()
    sends = [i for i, call in enumerate(calls) if call.startswith("sendfile(")]
    assert sends, calls  # nginx sent the blob with sendfile
    assert any("TCP_CORK, [1]" in call for call in calls[: sends[0]]), calls


async def test_a_resumed_range_with_the_grant_is_free_and_exact(proxied: Proxied) -> None:
    link = await shared_file(proxied, max_downloads=1)
    path = httpx.URL(link["url"]).path
    cut = 1_000_000
    with anyio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxied.url, trust_env=False, timeout=60) as browser:  # keeps cookies
            first = await browser.get(path, headers={"Range": f"bytes=0-{cut - 1}"})
            assert first.status_code == 206
            assert first.content == DATA[:cut]
            assert first.headers["content-range"] == f"bytes 0-{cut - 1}/{SIZE}"
            assert "lapse_grant" in browser.cookies  # its Path is the link's, as nginx forwarded it

            rest = await browser.get(path, headers={"Range": f"bytes={cut}-"})  # the cookie is the grant
            assert rest.status_code == 206
            assert first.content + rest.content == DATA
        async with fresh_client(proxied.url) as stranger:
            header = await stranger.get(
                path, headers={"Range": "bytes=-100", "Lapse-Grant": first.headers["lapse-grant"]}
            )
            assert header.status_code == 206
            assert header.content == DATA[-100:]
            assert (await stranger.get(path, headers={"Range": "bytes=-100"})).status_code == 410
    assert await downloads(proxied, link) == 1
    assert await answered_by(proxied, path, 4) == ["ranges", "ranges", "ranges", path]


async def test_conditionals_nginx_never_contradicts_a_counted_download(proxied: Proxied) -> None:
    link = await shared_file(proxied, expires_in=3600)  # unlimited: every GET without a grant counts
    path = httpx.URL(link["url"]).path
    with anyio.fail_after(120):
        async with fresh_client(proxied.url) as client:
            head = await client.head(path)
            etag, last_modified = head.headers["etag"], head.headers["last-modified"]
            later = format_datetime(datetime(2100, 1, 1, tzinfo=UTC), usegmt=True)
            earlier = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)

            async def get(expect_count: int, **headers: str) -> httpx.Response:
                before = await downloads(proxied, link)
                response = await client.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()})
                assert await downloads(proxied, link) == before + expect_count, (headers, response.status_code)
                return response

            # Judged by Lapse before counting; nginx never sees them.
            for headers in ({"If-None-Match": etag}, {"If-None-Match": "*"}, {"If-Modified-Since": last_modified}):
                not_modified = await get(0, **headers)
                assert not_modified.status_code == 304, headers
                assert not_modified.headers["etag"] == etag
            assert (await get(0, If_Match='"other"')).status_code == 412
            assert (await get(0, If_Unmodified_Since=earlier)).status_code == 412
            beyond = await get(0, Range=f"bytes={SIZE}-")
            assert beyond.status_code == 416
            assert beyond.headers["content-range"] == f"bytes */{SIZE}"

            # Preconditions that hold: counted, and all the bytes (nginx would have judged them against the blob's
            # mtime and its own ETag, so Lapse sends these itself).
            for headers in ({"If-Match": etag}, {"If-Match": "*"}, {"If-Unmodified-Since": later}):
                held = await get(1, **headers)
                assert (held.status_code, held.content == DATA) == (200, True), headers
            # Validators that do not match change nothing: nginx must not 304 on its own ETag or the blob's mtime.
            stale = await get(1, If_None_Match='"stale"', If_Modified_Since=earlier)
            assert (stale.status_code, stale.content == DATA) == (200, True)

            ranged = await get(1, Range="bytes=100-199", If_Range=etag)
            assert ranged.status_code == 206
            assert ranged.content == DATA[100:200]
            by_date = await get(1, Range="bytes=-10", If_Range=last_modified)
            assert (by_date.status_code, by_date.content) == (206, DATA[-10:])
            changed = await get(1, Range="bytes=100-199", If_Range='"an-older-version"')
            assert (changed.status_code, changed.content == DATA) == (200, True)
            dated = await get(1, Range="bytes=100-199", If_Range=earlier)
            assert (dated.status_code, dated.content == DATA) == (200, True)

            multi = await get(1, Range="bytes=0-9,20-29")
            assert multi.status_code == 206
            assert multi.headers["content-type"].startswith("multipart/byteranges; boundary=")
            assert DATA[0:10] in multi.content
            assert DATA[20:30] in multi.content
            malformed = await get(1, Range="bytes=9-1")
            assert (malformed.status_code, malformed.content == DATA) == (200, True)

    lapse = path
    assert await answered_by(proxied, path, 17) == [
        *[lapse] * 7,  # HEAD, three 304s, 412, 412, 416
        *[lapse] * 3,  # If-Match / If-Unmodified-Since that hold
        "whole",  # stale validators
        "ranges",
        "ranges",  # If-Range matching our ETag, our Last-Modified
        "whole",
        "whole",  # If-Range not matching
        lapse,  # several ranges
        "whole",  # a malformed Range, ignored
    ]


@pytest.mark.parametrize(
    ("value", "sender"),
    [("bytes=0-9\t", "lapse"), ("\tbytes=0-9", "lapse"), ("bytes=0-9 ", "ranges")],
    ids=["tab-after", "tab-before", "space-after"],
)
async def test_whitespace_nginx_reads_differently_sends_the_range_from_lapse(
    proxied: Proxied, value: str, sender: str
) -> None:
    """Tabs around the Range value: the HTTP parser in front of Lapse may trim them, nginx keeps them (a tab after
    makes nginx answer 416, one before makes it ignore the Range), so Lapse sends that range itself. nginx trims
    spaces, as we do: that one it sends."""
    link = await shared_file(proxied, max_downloads=1)
    path = httpx.URL(link["url"]).path
    with anyio.fail_after(30):
        stream = await anyio.connect_tcp("127.0.0.1", proxied.nginx.port)
        async with stream:
            request = f"GET {path} HTTP/1.1\r\nHost: x\r\nRange:{value}\r\nConnection: close\r\n\r\n"
            await stream.send(request.encode())
            received = b""
            while True:
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break  # Connection: close
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206 "), head
    assert body == DATA[:10]
    assert await downloads(proxied, link) == 1
    assert await answered_by(proxied, path, 1) == [path if sender == "lapse" else sender]


async def test_the_blob_location_is_not_reachable_from_outside(proxied: Proxied) -> None:
    data = os.urandom(1000)
    async with fresh_client(proxied.url) as client:
        await share(client, proxied.key, data, "secret.bin", max_downloads=1)
        blob = blob_path(proxied, data)
        for path in (f"{WHOLE}{blob}", f"{RANGES}{blob}", f"/_lapse/blobs/{blob}", f"/_lapse/blobs/whole/../{blob}"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert data not in response.content


async def test_metrics_are_not_served_to_the_public_side(proxied: Proxied) -> None:
    async with fresh_client(proxied.url) as client:
        assert (await client.get("/metrics")).status_code == 404
    async with fresh_client(proxied.lapse.url) as client:  # what Prometheus scrapes
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert "lapse_downloads_total" in response.text


async def test_exactly_k_full_bodies_through_nginx(proxied: Proxied) -> None:
    link = await shared_file(proxied, max_downloads=3)
    path = httpx.URL(link["url"]).path

    async def one() -> tuple[int, bool]:
        async with fresh_client(proxied.url) as client:
            response = await client.get(path)
            return response.status_code, response.content == DATA

    with anyio.fail_after(120):
        answers = await asyncio.gather(*(one() for _ in range(20)))
    assert sorted(answers) == [(200, True)] * 3 + [(410, False)] * 17
    assert await downloads(proxied, link) == 3


async def test_behind_tls_under_a_path_the_cookie_and_links_follow(proxied: Proxied, tmp_path: Path) -> None:
    """The config's proxy headers, mounted as its comments say: under /files/, behind TLS (faked: nginx says
    https), and a client's own X-Forwarded-* are never believed."""
    mounted = Nginx(
        tmp_path / "mounted",
        proxied.lapse,
        replace={
            "location / {": "location /files/ {",
            "proxy_pass http://lapse_app;": "proxy_pass http://lapse_app/;",
            'X-Forwarded-Prefix "";': "X-Forwarded-Prefix /files;",
            "X-Forwarded-Proto $scheme;": "X-Forwarded-Proto https;",
        },
    )
    data = os.urandom(5000)
    await anyio.to_thread.run_sync(mounted.start)
    try:
        with anyio.fail_after(60):
            async with fresh_client(f"{mounted.url}/files/") as client:
                link = (await share(client, proxied.key, data, "m.bin", max_downloads=1))["link"]
                token = link["url"].rsplit("/", 1)[1]
                assert link["url"] == f"https://127.0.0.1:{mounted.port}/files/d/{token}"
                response = await client.get(f"d/{token}")
                assert response.status_code == 200
                assert response.content == data
                cookie = response.headers["set-cookie"]
                assert f"Path=/files/d/{token};" in cookie
                assert cookie.endswith("; Secure")
                assert mounted.answered_by(f"/files/d/{token}")[0].startswith(WHOLE)
    finally:
        await anyio.to_thread.run_sync(mounted.stop)


async def test_a_clients_forwarded_headers_are_not_believed(proxied: Proxied) -> None:
    link = await shared_file(proxied, max_downloads=1)
    path = httpx.URL(link["url"]).path
    forged = {"X-Forwarded-Prefix": "/evil", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    async with fresh_client(proxied.url) as client:
        response = await client.get(path, headers=forged)
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert f"Path={path};" in cookie
    assert "Secure" not in cookie


async def test_a_password_post_is_counted_and_sent_by_nginx(proxied: Proxied) -> None:
    """nginx turns the POST into a GET for the internal location (a static location would refuse a POST)."""
    with anyio.fail_after(60):
        async with fresh_client(proxied.url) as client:
            uploaded = await client.put("/api/v1/files/locked.bin", content=DATA, headers=bearer(proxied.key))
            made = await client.post(
                f"/api/v1/files/{uploaded.json()['id']}/links",
                json={"max_downloads": 1, "password": "open sesame"},  # never in a URL
                headers=bearer(proxied.key),
            )
            assert made.status_code == 201, made.text
            link = made.json()
            path = httpx.URL(link["url"]).path
            assert (await client.post(path, data={"password": "wrong"})).status_code in (401, 403)
            response = await client.post(path, data={"password": "open sesame"})
            assert response.status_code == 200
            assert response.content == DATA
            assert (await client.post(path, data={"password": "open sesame"})).status_code == 410
    assert await downloads(proxied, link) == 1
    assert (await answered_by(proxied, path, 3))[1] == "whole"


async def test_nginx_access_log_holds_no_token_or_secret(proxied: Proxied) -> None:
    """The shipped log format: a token in a download's path, or a key in a query string, never reaches it."""
    link = await shared_file(proxied, max_downloads=5)
    token = link["url"].rsplit("/", 1)[1]
    async with fresh_client(proxied.url) as client:
        for target in (
            f"/d/{token}",
            f"/d//{token}",
            f"/s/{token}",
            f"/d/%2e%2e/{token}",
            "/api/v1/files?api_key=lapse_SECRETKEY",
        ):
            await client.get(target)
    log = proxied.nginx.root / "site.access.log"
    for _ in range(100):  # nginx writes each line once its answer is done
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= 5:
            break
        await anyio.sleep(0.05)
    text = "\n".join(lines)
    assert len(lines) >= 5, text
    assert token not in text
    assert "SECRETKEY" not in text
    assert '"GET /d" 200' in text  # still says what was asked for, and what it got
