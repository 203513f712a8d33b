"""GET/HEAD/POST /d/{token}: every status and header of docs/api.md's downloads, and what spends one."""

import base64
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, update
from starlette.types import ASGIApp

from lapse.app import create_app
from lapse.db.base import utc_now
from lapse.db.models import Link
from lapse.db.session import transaction
from lapse.links import redemption
from lapse.runtime import Runtime
from lapse.settings import Settings
from lapse.storage.base import SMALL_BLOB
from tests.helpers import (
    ApiClient,
    bytes_from_lapse,
    downloads_of,
    fresh_get,
    lapse_answer,
    storage_matrix_with_paths,
)

pytestmark = [pytest.mark.anyio, storage_matrix_with_paths(("fast", "routed"))]

BODY = os.urandom(1000)


@pytest.fixture
async def app(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[ASGIApp]:
    """Every test here runs with the fast paths in front of the framework and without them (`pytestmark`): same
    answers."""
    fast = request.param == "fast"
    async with LifespanManager(create_app(settings, sweep=False, fast_paths=fast)) as manager:
        yield manager.app


async def test_full_get_carries_every_safe_header(alice: ApiClient, http: httpx.AsyncClient) -> None:
    file = await alice.upload(BODY, name="report.pdf", content_type="application/pdf")
    link = await alice.link(file["id"])
    response = await fresh_get(http, httpx.URL(link["url"]).path)
    assert response.status_code == 200
    assert response.content == BODY
    h = response.headers  # Lapse's, or the store's with what the presigned URL forced
    assert h["content-length"] == str(len(BODY))
    assert h["content-disposition"] == "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    assert h["cache-control"] == "private, no-store"
    assert h["accept-ranges"] == "bytes"
    assert "last-modified" in h
    own = lapse_answer(response).headers
    assert own["x-content-type-options"] == "nosniff"
    assert own["referrer-policy"] == "no-referrer"
    if (sent := bytes_from_lapse(response)) is not None:
        assert sent["content-security-policy"] == "sandbox"
        assert sent["x-robots-tag"].startswith("noindex")
        assert sent["etag"] == f'"{file["sha256"]}"'
    assert own["lapse-grant"].startswith(link["id"] + ".")
    cookie = own["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert f"Path={httpx.URL(link['url']).path}" in cookie
    assert "Secure" not in cookie  # plain http here; https adds it (test_grant_cookie_is_secure_behind_https)


@pytest.mark.parametrize(
    ("declared", "served"),
    [
        ("text/html", "application/octet-stream"),
        ("image/svg+XML", "application/octet-stream"),  # Jirafeau CVE-2024-12326: case must not matter
        ("image/png,text/html", "image/png"),  # CVE-2025-7066: the list is dropped, the name decides
        ("text/plain; charset=utf-8", "text/plain"),
    ],
)
async def test_active_content_never_served_as_a_page(
    alice: ApiClient, http: httpx.AsyncClient, declared: str, served: str
) -> None:
    file = await alice.upload(
        b"<svg onload=alert(1)>", name="x.png" if "png" in declared else "x.html", content_type=declared
    )
    link = await alice.link(file["id"])
    response = await fresh_get(http, httpx.URL(link["url"]).path)
    assert response.headers["content-type"].split(";")[0] == served
    assert response.headers["content-disposition"].startswith("attachment;")
    if (sent := bytes_from_lapse(response)) is not None:
        assert sent["content-security-policy"] == "sandbox"


async def test_head_has_get_headers_and_never_counts(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=1)
    head = await http.head(link["path"])
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(BODY))
    assert head.headers["lapse-downloads-remaining"] == "1"
    assert "lapse-expires-at" in head.headers
    get = await fresh_get(http, link["path"])
    for name in ("content-type", "content-disposition", "cache-control", "accept-ranges", "content-length"):
        assert head.headers[name] == get.headers[name], name
    assert head.headers["x-content-type-options"] == lapse_answer(get).headers["x-content-type-options"]
    if (sent := bytes_from_lapse(get)) is not None:
        for name in ("etag", "last-modified", "content-security-policy"):
            assert head.headers[name] == sent[name], name
    assert await downloads_of(alice, link) == 1


async def test_range_without_grant_counts_once_and_resumes_free(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=1)
    first = await fresh_get(http, link["path"], range="bytes=0-99")
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-99/{len(BODY)}"
    assert first.content == BODY[:100]
    grant = lapse_answer(first).headers["lapse-grant"]
    assert await downloads_of(alice, link) == 1

    http.cookies.clear()
    rest = await http.get(link["path"], headers={"range": "bytes=100-", "lapse-grant": grant})
    assert rest.status_code == 206
    assert first.content + rest.content == BODY
    suffix = await http.get(link["path"], headers={"range": "bytes=-10", "lapse-grant": grant})
    assert suffix.content == BODY[-10:]
    assert suffix.headers["content-range"] == f"bytes {len(BODY) - 10}-{len(BODY) - 1}/{len(BODY)}"
    assert await downloads_of(alice, link) == 1
    assert (await fresh_get(http, link["path"])).status_code == 410


async def test_range_end_clamps_to_size(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY)
    response = await fresh_get(http, link["path"], range="bytes=900-5000")
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 900-999/{len(BODY)}"
    assert response.content == BODY[900:]


async def test_multiple_ranges_are_multipart(alice: ApiClient, http: httpx.AsyncClient, storage_mode: str) -> None:
    link = await alice.share(BODY)
    response = await fresh_get(http, link["path"], range="bytes=0-9,20-29")
    if storage_mode != "local":  # a blob in a bucket is sent whole rather than in parts (RFC 9110 allows either)
        assert (response.status_code, response.content) == (200, BODY)
        assert not response.history  # never redirected: the store would answer several ranges its own way
        return
    assert response.status_code == 206
    assert response.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert b"Content-Range: bytes 0-9/1000\r\n" in response.content
    assert BODY[20:30] in response.content


async def test_too_many_ranges_get_the_whole_file(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY)
    many = ",".join(f"{i}-{i}" for i in range(0, 200, 2))  # CVE-2011-3192 shape
    response = await fresh_get(http, link["path"], range=f"bytes={many}")
    assert response.status_code == 200
    assert response.content == BODY


@pytest.mark.parametrize("header", ["bytes=5000-", "bytes=1000-1000"])
async def test_unsatisfiable_range_is_416_and_free(alice: ApiClient, http: httpx.AsyncClient, header: str) -> None:
    link = await alice.share(BODY, max_downloads=1)
    response = await fresh_get(http, link["path"], range=header)
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(BODY)}"
    assert response.headers["cache-control"] == "no-store"
    assert await downloads_of(alice, link) == 0


async def test_any_range_on_an_empty_file_is_416(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(b"", max_downloads=1)
    assert (await fresh_get(http, link["path"], range="bytes=0-")).status_code == 416
    assert (await fresh_get(http, link["path"], range="bytes=-5")).status_code == 416
    empty = await fresh_get(http, link["path"])
    assert empty.status_code == 200
    assert empty.content == b""


@pytest.mark.parametrize("header", ["items=0-5", "bytes=5-4", "bytes=abc", "bytes=", "bytes=--1", "0-5"])
async def test_malformed_range_is_ignored(alice: ApiClient, http: httpx.AsyncClient, header: str) -> None:
    link = await alice.share(BODY)
    response = await fresh_get(http, link["path"], range=header)
    assert response.status_code == 200
    assert response.content == BODY


async def test_if_range(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY)
    full = await http.head(link["path"])  # Lapse's validators, as a GET sent by Lapse carries (test_head_...)
    etag, last_modified = full.headers["etag"], full.headers["last-modified"]
    assert (await fresh_get(http, link["path"], range="bytes=0-9", if_range=etag)).status_code == 206
    assert (await fresh_get(http, link["path"], range="bytes=0-9", if_range=last_modified)).status_code == 206
    assert (await fresh_get(http, link["path"], range="bytes=0-9", if_range=f"W/{etag}")).status_code == 200
    assert (await fresh_get(http, link["path"], range="bytes=0-9", if_range='"other"')).status_code == 200


async def test_if_none_match_is_304_and_free(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=2)
    etag = (await http.head(link["path"])).headers["etag"]
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        response = await fresh_get(http, link["path"], if_none_match=header)
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "private, no-store"
    # If-None-Match beats If-Modified-Since: a mismatching tag sends the file though the date would say 304.
    sent = await fresh_get(
        http, link["path"], if_none_match='"nope"', if_modified_since="Fri, 01 Jan 2100 00:00:00 GMT"
    )
    assert sent.status_code == 200
    assert await downloads_of(alice, link) == 1


async def test_if_modified_since(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY)
    last_modified = (await http.head(link["path"])).headers["last-modified"]
    assert (await fresh_get(http, link["path"], if_modified_since=last_modified)).status_code == 304
    old = "Sat, 01 Jan 2000 00:00:00 GMT"
    assert (await fresh_get(http, link["path"], if_modified_since=old)).status_code == 200


async def test_if_match_and_if_unmodified_since_fail_with_412(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=1)
    assert (await fresh_get(http, link["path"], if_match='"other"')).status_code == 412
    past = "Sat, 01 Jan 2000 00:00:00 GMT"
    assert (await fresh_get(http, link["path"], if_unmodified_since=past)).status_code == 412
    assert await downloads_of(alice, link) == 0
    etag = (await http.head(link["path"])).headers["etag"]
    assert (await fresh_get(http, link["path"], if_match=etag)).status_code == 200


async def test_dead_link_is_410_before_preconditions(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY)
    etag = (await http.head(link["path"])).headers["etag"]
    await alice.request("DELETE", f"/api/v1/links/{link['id']}")
    response = await fresh_get(http, link["path"], if_none_match=etag)
    assert response.status_code == 410
    assert response.json()["reason"] == "revoked"


@pytest.mark.parametrize("token", ["x" * 32, "short", "a" * 200, "bad%20token%0d%0aX:1"])
async def test_unknown_or_malformed_token_is_generic_404(http: httpx.AsyncClient, token: str) -> None:
    response = await http.get(f"/d/{token}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "No such link.",
    }


async def test_expired_link_is_410(alice: ApiClient, http: httpx.AsyncClient, runtime: Runtime) -> None:
    link = await alice.share(BODY)
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Link).where(Link.id == link["id"]).values(expires_at=utc_now() - timedelta(seconds=1))
        )
    response = await fresh_get(http, link["path"])
    assert response.status_code == 410
    assert response.json()["reason"] == "expired"
    assert response.headers["cache-control"] == "no-store"
    assert (await http.head(link["path"])).status_code == 410


async def test_grant_outlives_expiry_but_not_revocation(
    alice: ApiClient, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    link = await alice.share(BODY, max_downloads=1)
    grant = lapse_answer(await fresh_get(http, link["path"], range="bytes=0-9")).headers["lapse-grant"]
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Link).where(Link.id == link["id"]).values(expires_at=utc_now() - timedelta(seconds=1))
        )
    http.cookies.clear()
    resumed = await http.get(link["path"], headers={"range": "bytes=10-", "lapse-grant": grant})
    assert resumed.status_code == 206  # a transfer that started in time finishes
    await alice.request("DELETE", f"/api/v1/links/{link['id']}")
    refused = await http.get(link["path"], headers={"range": "bytes=10-", "lapse-grant": grant})
    assert refused.status_code == 410


async def test_grant_is_bound_to_its_link(alice: ApiClient, http: httpx.AsyncClient) -> None:
    one = await alice.share(BODY, max_downloads=1)
    other = await alice.share(BODY, max_downloads=1)
    grant = lapse_answer(await fresh_get(http, one["path"])).headers["lapse-grant"]
    await fresh_get(http, other["path"])  # spends other's only download
    http.cookies.clear()
    assert (await http.get(other["path"], headers={"lapse-grant": grant})).status_code == 410
    forged = grant.rsplit(".", 1)[0] + ".AAAA"
    assert (await http.get(one["path"], headers={"lapse-grant": forged})).status_code == 410


async def test_prefetch_never_counts(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=1)
    for header in (
        {"sec-purpose": "prefetch"},
        {"sec-purpose": "prefetch;prerender"},
        {"purpose": "prefetch"},
    ):
        response = await fresh_get(http, link["path"], **header)
        assert response.status_code == 403
        assert response.content != BODY
    assert await downloads_of(alice, link) == 0


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "TRACE"])
async def test_other_methods_are_405_with_allow(alice: ApiClient, http: httpx.AsyncClient, method: str) -> None:
    link = await alice.share(BODY, max_downloads=1)
    response = await http.request(method, link["path"])
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    assert await downloads_of(alice, link) == 0


async def test_post_on_a_link_without_password_is_405(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=1)
    response = await http.post(link["path"], data={"password": "x"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert await downloads_of(alice, link) == 0


async def test_password_link(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=1, password="s3cret pass")
    assert link["has_password"] is True
    missing = await fresh_get(http, link["path"])
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Basic")
    wrong = await http.post(link["path"], data={"password": "nope"})
    assert wrong.status_code == 401
    assert await downloads_of(alice, link) == 0

    right = await http.post(link["path"], data={"password": "s3cret pass"})
    assert right.status_code == 200
    assert right.content == BODY
    assert right.headers["content-disposition"].startswith("attachment;")
    assert await downloads_of(alice, link) == 1
    resumed = await http.get(link["path"], headers={"range": "bytes=10-19"})  # grant cookie, no password
    assert resumed.status_code == 206
    http.cookies.clear()
    assert (await http.post(link["path"], data={"password": "s3cret pass"})).status_code == 410


async def test_password_is_stored_as_argon2id(alice: ApiClient, runtime: Runtime) -> None:
    link = await alice.share(BODY, password="pw")
    async with transaction(runtime.sessions) as session:
        stored = (await session.execute(select(Link.password_hash).where(Link.id == link["id"]))).scalar_one()
    assert stored is not None
    assert stored.startswith("$argon2id$")


async def test_password_by_basic_auth_and_json(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=2, password="pw")
    basic = base64.b64encode(b":pw").decode()
    assert (await fresh_get(http, link["path"], authorization=f"Basic {basic}")).content == BODY
    http.cookies.clear()
    assert (await http.post(link["path"], json={"password": "pw"})).content == BODY
    assert await downloads_of(alice, link) == 2


async def test_password_guessing_is_throttled(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=1, password="right")
    for _ in range(5):
        assert (await http.post(link["path"], data={"password": "wrong"})).status_code == 401
    limited = await http.post(link["path"], data={"password": "right"})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert await downloads_of(alice, link) == 0


async def test_password_never_accepted_in_the_url(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=1, password="pw")
    assert (await fresh_get(http, f"{link['path']}?password=pw")).status_code == 401
    assert (await http.post(f"{link['path']}?password=pw")).status_code == 401


async def test_grant_cookie_is_secure_behind_https(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY)
    # httpx's ASGI transport connects from 127.0.0.1, a trusted proxy by default.
    response = await fresh_get(http, link["path"], x_forwarded_proto="https")
    assert lapse_answer(response).headers["set-cookie"].endswith("; Secure")


async def test_file_deleted_is_410(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY)
    assert (await alice.request("DELETE", f"/api/v1/files/{link['file_id']}")).status_code == 204
    response = await fresh_get(http, link["path"])
    assert response.status_code == 410
    assert response.json()["reason"] == "file_deleted"


async def test_a_file_deleted_while_its_download_is_judged_is_410_not_503(
    alice: ApiClient, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DELETE landing between reading the link and opening the file's bytes: the link is gone (410), as on the
    next request, not a storage outage (503 with Retry-After, which tells the client to come back for nothing)."""
    large = os.urandom(SMALL_BLOB + 1)  # not kept in memory: its blob is opened, and is gone by then
    link = await alice.share(large, password="pw")  # a password link takes the route, never the fast path
    check_password = redemption.check_password

    async def check_then_delete(**kwargs: Any) -> None:
        await check_password(**kwargs)
        assert (await alice.request("DELETE", f"/api/v1/files/{link['file_id']}")).status_code == 204

    monkeypatch.setattr(redemption, "check_password", check_then_delete)  # as the route calls it
    response = await http.post(link["path"], data={"password": "pw"})
    assert response.status_code == 410, response.text
    assert response.json()["reason"] == "file_deleted"


async def test_password_post_with_a_matching_if_none_match_is_412_uncounted(
    alice: ApiClient, http: httpx.AsyncClient
) -> None:
    """RFC 9110 §13.1.2: a failed If-None-Match answers 304 only to GET and HEAD; a POST gets 412."""
    link = await alice.share(BODY, max_downloads=1, password="pw")
    head = await http.head(link["path"], headers={"Authorization": "Basic " + base64.b64encode(b":pw").decode()})
    response = await http.post(link["path"], data={"password": "pw"}, headers={"If-None-Match": head.headers["etag"]})
    assert response.status_code == 412
    assert await downloads_of(alice, link) == 0


async def test_deeply_nested_json_password_is_400(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, password="pw")
    nested = b"[" * 4000 + b"]" * 4000  # within the form size cap, past the JSON parser's recursion limit
    response = await http.post(link["path"], content=nested, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_dead_link_says_why_in_a_header_too(alice: ApiClient, http: httpx.AsyncClient) -> None:
    """HEAD has no body for the problem's `reason`; `Lapse-Gone-Reason` carries it for HEAD and GET alike."""
    link = await alice.share(BODY, max_downloads=1)
    assert (await http.get(link["path"])).status_code == 200
    http.cookies.clear()
    head = await http.head(link["path"])
    assert head.status_code == 410
    assert head.headers["lapse-gone-reason"] == "exhausted"
    await alice.request("DELETE", f"/api/v1/links/{link['id']}")
    get = await http.get(link["path"])
    assert get.headers["lapse-gone-reason"] == get.json()["reason"] == "revoked"


async def test_a_password_post_ignores_range(alice: ApiClient, http: httpx.AsyncClient) -> None:
    """RFC 9110 §14.2: Range is for GET; a POST carrying one is answered whole (and counted once). Redirected, the
    POST's answer is the 303 (no Content-Range); the GET the client then sends the store with its Range is a
    request of its own, which the store may answer with the part."""
    link = await alice.share(BODY, max_downloads=2, password="pw")
    response = await http.post(link["path"], data={"password": "pw"}, headers={"Range": "bytes=0-9"})
    assert "content-range" not in lapse_answer(response).headers
    if response.history:
        assert (response.status_code, response.content) == (206, BODY[:10])
    else:
        assert (response.status_code, response.content) == (200, BODY)
    assert await downloads_of(alice, link) == 1
