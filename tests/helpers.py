"""Small helpers the tests share: an API client that knows its key, blob counting, and the storage modes a download
test runs in (with a browser that follows Lapse's redirects to the store)."""

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.types import ASGIApp

from lapse.db.session import transaction
from lapse.keys import service as keys_service
from lapse.runtime import Runtime
from lapse.settings import Settings
from tests.s3.conftest import BUCKET, PART_SIZE
from tests.s3.rgw import Rgw

TEST_SECRET = "test-secret-" + "x" * 40


@dataclass
class ApiClient:
    http: httpx.AsyncClient
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def upload(self, content: bytes, name: str = "hello.txt", content_type: str = "text/plain") -> dict[str, Any]:
        response = await self.request("POST", "/api/v1/files", files={"file": (name, content, content_type)})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def link(self, file_id: str, **params: Any) -> dict[str, Any]:
        response = await self.request("POST", f"/api/v1/files/{file_id}/links", json=params)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def share(self, content: bytes, name: str = "hello.txt", **params: Any) -> dict[str, Any]:
        """Upload and mint a link; answers the link with `path` (the URL's path) added."""
        file = await self.upload(content, name)
        link = await self.link(file["id"], **params)
        link["path"] = httpx.URL(link["url"]).path
        return link


def stored_files(root: Path) -> list[Path]:
    """Every regular file under the blob folder: blobs and temp files alike."""
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def downloads_of(owner: ApiClient, link: dict[str, Any]) -> int:
    response = await owner.request("GET", f"/api/v1/links/{link['id']}")
    count: int = response.json()["downloads"]
    return count


async def fresh_get(http: httpx.AsyncClient, path: str, **headers: str) -> httpx.Response:
    """A request with no grant cookie: the client a recipient would be."""
    http.cookies.clear()
    return await http.get(path, headers={name.replace("_", "-"): value for name, value in headers.items()})


async def new_key(runtime: Runtime, name: str, *, admin: bool = False) -> str:
    """Issue an API key through the service, as `lapse keys create` does."""
    async with transaction(runtime.sessions) as session:
        _, raw = await keys_service.create_key(session, secret=runtime.secret, name=name, admin=admin)
    return raw


def free_port() -> int:
    """A TCP port nobody listens on right now (another process may take it before we do: callers retry)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Where blobs live and how a download leaves (tests/conftest.py: storage_mode), per database. Every mode on both
# databases; a module that also runs with and without the fast paths takes STORAGE_MATRIX_WITH_PATHS instead.
STORAGE_MODES = ("local", "s3-inline", "s3-redirect")
DATABASES = ("sqlite", "postgresql")
STORAGE_MATRIX = pytest.mark.parametrize(
    ("storage_mode", "database_url"),
    [pytest.param(mode, db, id=f"{mode}-{db}") for mode in STORAGE_MODES for db in DATABASES],
    indirect=True,
)

# The server tests' `shared` server (tests/server/conftest.py) in every storage mode, on both databases.
SHARED_IN_EVERY_STORAGE = pytest.mark.parametrize(
    "shared",
    [f"{db}{mode}" for mode in ("", "-s3-inline", "-s3-redirect") for db in DATABASES],
    indirect=True,
)


def storage_matrix_with_paths(app_params: tuple[str, str]) -> pytest.MarkDecorator:
    """For a module that also runs with the fast paths on and off (the `app` fixture's params): local storage on
    both paths and both databases, as before the bucket came; each S3 mode on both databases, each database on
    the other path. Every test in every storage mode on each database, and each mode on both paths, at two thirds
    of the cost of the whole product: the storage is behind the service the paths share."""
    fast, routed = app_params
    combos = [("local", db, path) for path in (fast, routed) for db in DATABASES]
    combos += [("s3-inline", "sqlite", fast), ("s3-inline", "postgresql", routed)]
    combos += [("s3-redirect", "sqlite", routed), ("s3-redirect", "postgresql", fast)]
    return pytest.mark.parametrize(
        ("storage_mode", "database_url", "app"),
        [pytest.param(*combo, id="-".join(combo)) for combo in combos],
        indirect=True,
    )


@dataclass(frozen=True)
class Store:
    """Where Lapse may redirect a download: the bucket under this test's prefix, for redirect_ttl at most."""

    base: str  # the endpoint, bucket and prefix: every presigned URL starts with it
    redirect_ttl: timedelta
    grant_ttl: timedelta


def s3_server_env(rgw: Rgw, mode: str, prefix: str) -> dict[str, str]:
    """The environment of a `lapse serve` with its blobs in the RGW's bucket under `prefix`, sending downloads
    inline or redirecting them (`mode`: s3-inline or s3-redirect)."""
    return {
        "LAPSE_STORAGE_URL": f"s3://{BUCKET}/{prefix}",
        "LAPSE_S3_ENDPOINT": rgw.endpoint,
        "LAPSE_S3_REGION": rgw.region,
        "LAPSE_S3_PATH_STYLE": "true",
        "LAPSE_S3_PART_SIZE": str(PART_SIZE),
        "LAPSE_DELIVERY": mode.removeprefix("s3-"),
        "AWS_ACCESS_KEY_ID": rgw.access_key,
        "AWS_SECRET_ACCESS_KEY": rgw.secret_key,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def browsing(env: Mapping[str, str]) -> dict[str, Any]:
    """Options for an httpx client of a server of this environment: none, or those of a Browser of its store."""
    store = store_of(env)
    return {} if store is None else Browser(store).options()


def store_of(env: Mapping[str, str]) -> Store | None:
    """Where a server of this environment redirects downloads to, if it does."""
    if env.get("LAPSE_DELIVERY") != "redirect":
        return None
    bucket_and_prefix = env["LAPSE_STORAGE_URL"].removeprefix("s3://")
    assert not {"LAPSE_REDIRECT_TTL", "LAPSE_GRANT_TTL"} & env.keys(), "the defaults are read below"
    fields = Settings.model_fields
    return Store(
        base=f"{env['LAPSE_S3_ENDPOINT']}/{bucket_and_prefix}",
        redirect_ttl=fields["redirect_ttl"].default,
        grant_ttl=fields["grant_ttl"].default,
    )


GRANT_COOKIE = "lapse_grant"
PLAIN_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
JUDGED_BY_LAPSE = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range")


def grant_expiry(grant: str) -> datetime:
    """A grant is `<link id>.<expiry unix seconds>.<signature>`."""
    return datetime.fromtimestamp(int(grant.split(".")[1]), UTC)


def presented_grant(request: httpx.Request) -> str | None:
    if "lapse-grant" in request.headers:
        return request.headers["lapse-grant"]
    cookie = SimpleCookie(request.headers.get("cookie", ""))
    return cookie[GRANT_COOKIE].value if GRANT_COOKIE in cookie else None


class Browser:
    """A client that follows a download's 302 (303 after a password form) to the presigned URL as a browser would
    — the Range header goes along, Lapse's cookies and Authorization do not — and checks on the way what every
    redirect owes (check_lapse_answer, check_store_answer). Lapse in process (`app`, http://testserver) or a
    real server (`base_url`); the store over the network."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def client(self, *, app: ASGIApp | None = None, **options: Any) -> httpx.AsyncClient:
        if app is not None:
            transport = _Routes(httpx.ASGITransport(app=app), httpx.AsyncHTTPTransport())
            options |= {"transport": transport, "base_url": "http://testserver"}
        return httpx.AsyncClient(**self.options(), **options)

    def options(self) -> dict[str, Any]:
        """What makes an httpx client this browser."""
        return {"follow_redirects": True, "event_hooks": {"response": [self.check]}}

    async def check(self, response: httpx.Response) -> None:
        if str(response.request.url).startswith(self.store.base):
            check_store_answer(response)
        elif response.request.url.path.startswith("/d/"):
            await check_lapse_answer(response, self.store)


async def check_lapse_answer(response: httpx.Response, store: Store) -> None:
    """Lapse's answer to a download: never a redirect for HEAD nor for a request Lapse must judge itself
    (validators, a Range it ignores or of several ranges), and always one for any other GET or POST it answers with
    the bytes; a redirect is 302 (303 for POST) with no body, `Cache-Control: private, no-store`,
    `Referrer-Policy: no-referrer`, nosniff, its Location on the store under this test's prefix, signed to force
    Content-Disposition and Cache-Control, under a grant (new, with its cookie, or the one presented) that
    outlives the URL, which lives no longer than LAPSE_REDIRECT_TTL either."""
    request = response.request
    redirected = response.status_code in (302, 303)
    if request.method == "HEAD" or not _for_the_store(request.headers):
        assert not redirected, (request.method, request.headers)
    elif response.status_code in (200, 206):
        raise AssertionError(f"sent by Lapse, not redirected: {request.method} {request.headers}")
    if not redirected:
        return
    assert response.status_code == (303 if request.method == "POST" else 302)
    await response.aread()
    assert response.content == b""
    h = response.headers
    assert (h["cache-control"], h["referrer-policy"], h["x-content-type-options"]) == (
        "private, no-store",
        "no-referrer",
        "nosniff",
    )
    location = h["location"]
    assert location.startswith(store.base), location
    query = dict(parse_qsl(httpx.URL(location).query.decode()))
    assert query["response-cache-control"] == "private, no-store"
    assert query["response-content-disposition"].startswith("attachment; filename=")
    new = h.get("lapse-grant")
    if new is not None:
        assert f"{GRANT_COOKIE}={new};" in h["set-cookie"]
    signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    lives = timedelta(seconds=int(query["X-Amz-Expires"]))
    assert timedelta(seconds=1) <= lives <= store.redirect_ttl
    grant = new if new is not None else presented_grant(request)
    assert grant is not None, "a redirect without a grant: the transfer could not resume"
    assert signed + lives <= grant_expiry(grant), (signed, lives, grant)  # the URL dies no later than its grant


def _for_the_store(headers: httpx.Headers) -> bool:
    """Whether the store judges this request as Lapse would: no validators, and no Range or one plain range."""
    if any(name in headers for name in JUDGED_BY_LAPSE):
        return False
    ranges = headers.get_list("range")
    if not ranges:
        return True
    plain = PLAIN_RANGE.fullmatch(ranges[0])
    if len(ranges) > 1 or plain is None or not (plain[1] or plain[2]):
        return False
    return not (plain[1] and plain[2] and int(plain[2]) < int(plain[1]))


def check_store_answer(response: httpx.Response) -> None:
    """The store's answer to a presigned URL: 200 or 206 with the forced Content-Disposition, Content-Type and
    Cache-Control."""
    forced = dict(parse_qsl(response.request.url.query.decode()))
    h = response.headers
    assert response.status_code in (200, 206), (response.status_code, response.request.headers)
    assert h["content-disposition"] == forced["response-content-disposition"]
    assert h["content-type"] == forced["response-content-type"]
    assert h["cache-control"] == "private, no-store"


class _Routes(httpx.AsyncBaseTransport):
    """Lapse in process for http://testserver, the network for the rest (the store)."""

    def __init__(self, lapse: httpx.AsyncBaseTransport, network: httpx.AsyncBaseTransport) -> None:
        self.lapse = lapse
        self.network = network

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        routed = self.lapse if request.url.host == "testserver" else self.network
        return await routed.handle_async_request(request)

    async def aclose(self) -> None:
        await self.network.aclose()
        await self.lapse.aclose()


def lapse_answer(response: httpx.Response) -> httpx.Response:
    """What Lapse itself answered a download: its redirect when the store sent the bytes, else the response. Lapse's
    headers (the grant, its cookie, nosniff) are asserted here, the bytes and what describes them on `response`."""
    return response.history[0] if response.history else response


def bytes_from_lapse(response: httpx.Response) -> httpx.Headers | None:
    """The headers of Lapse's own 200/206, or None when the store sent the bytes: the headers only Lapse can put on
    them (ETag = the content's sha256, its Last-Modified, the CSP sandbox, X-Robots-Tag) cannot be forced on a
    store's answer, which carries instead what a presigned URL can force (Browser checks those)."""
    return None if response.history else response.headers
