"""Hostile bytes in cookies, headers, forms and query strings get a 4xx, never a 500 (found in review)."""

import base64
import logging
import os
import time
from datetime import timedelta

import httpx
import pytest

from lapse.logs import RedactTokens
from lapse.runtime import Runtime
from lapse.sweeper import ORPHAN_AGE, sweep_once
from tests.helpers import STORAGE_MATRIX, ApiClient, stored_files

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("tail", ["\u00b2.x", "9" * 5000 + ".x", "9999999999.\u00e9"])
async def test_malformed_grants_are_just_not_grants(alice: ApiClient, http: httpx.AsyncClient, tail: str) -> None:
    link = await alice.share(b"x", max_downloads=1)
    assert (await http.get(link["path"])).status_code == 200
    http.cookies.clear()
    grant = f"{link['id']}.{tail}".encode()
    response = await http.get(link["path"], headers={b"lapse-grant": grant})
    assert response.status_code == 410  # exhausted, and the forged grant did not get it past


async def test_non_ascii_session_cookie_is_signed_out(http: httpx.AsyncClient) -> None:
    response = await http.get("/", headers={b"cookie": "lapse_session=a.b.c.\u00e9".encode(), b"accept": b"text/html"})
    assert response.status_code in (200, 303)
    assert response.status_code != 500


async def test_malformed_multipart_is_400(alice: ApiClient) -> None:
    for body in (b"--XXzz", b"--XX\r\nno colon here\r\n\r\nx\r\n--XX--\r\n"):
        response = await alice.request(
            "POST", "/api/v1/files", content=body, headers={"content-type": "multipart/form-data; boundary=XX"}
        )
        assert response.status_code == 400, body
        assert response.headers["content-type"] == "application/problem+json"


async def test_cursor_without_zone_is_400(alice: ApiClient) -> None:
    naive = "WyIyMDIwLTAxLTAxVDAwOjAwOjAwIiwieCJd"  # ["2020-01-01T00:00:00","x"]
    assert (await alice.request("GET", "/api/v1/files", params={"cursor": naive})).status_code == 400
    assert (await alice.request("GET", "/api/v1/links", params={"cursor": naive})).status_code == 400


@pytest.mark.parametrize(
    "cursor",
    [
        '["0001-01-01T00:00:00+05:00","x"]',  # before year 1 in UTC
        '["9999-12-31T23:59:59-05:00","x"]',  # after year 9999 in UTC
    ],
)
async def test_cursor_whose_instant_utc_cannot_hold_is_400(alice: ApiClient, cursor: str) -> None:
    encoded = base64.urlsafe_b64encode(cursor.encode()).rstrip(b"=").decode()
    for path in ("/api/v1/files", "/api/v1/links"):
        response = await alice.request("GET", path, params={"cursor": encoded})
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


@STORAGE_MATRIX  # a download: in every storage mode
@pytest.mark.parametrize("header", ["if-modified-since", "if-unmodified-since"])
async def test_a_date_past_any_calendar_is_ignored(alice: ApiClient, http: httpx.AsyncClient, header: str) -> None:
    """RFC 9110 §13.1.3/§13.1.4: an invalid date is ignored — not a 500 from the year overflowing datetime."""
    link = await alice.share(b"x" * 10)
    far = {header: "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"}
    head = await http.head(link["path"], headers=far)
    assert head.status_code == 200
    got = await http.get(link["path"], headers=far)
    assert (got.status_code, got.content) == (200, b"x" * 10)


@STORAGE_MATRIX  # a download: in every storage mode
async def test_non_ascii_basic_credentials_are_no_credentials(alice: ApiClient, http: httpx.AsyncClient) -> None:
    plain = await alice.share(b"open", max_downloads=5)
    guarded = await alice.share(b"closed", password="pw")
    hostile = {b"authorization": b"Basic \xff\xfe"}
    assert (await http.get(plain["path"], headers=hostile)).content == b"open"
    assert (await http.get(guarded["path"], headers=hostile)).status_code == 401


@STORAGE_MATRIX  # a download: in every storage mode
async def test_a_json_password_no_utf8_can_hold_is_400(alice: ApiClient, http: httpx.AsyncClient) -> None:
    """JSON can carry a lone surrogate; no password set through the API holds one (argon2 hashes UTF-8)."""
    link = await alice.share(b"closed", password="pw")
    response = await http.post(
        link["path"], content=b'{"password": "\\ud800"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await http.post(link["path"], json={"password": "pw"})).content == b"closed"


async def test_raw_upload_with_link_terms_that_cannot_be_is_422_before_storing(
    alice: ApiClient, runtime: Runtime
) -> None:
    before = stored_files(runtime.settings.data_dir / "blobs")
    response = await alice.request(
        "PUT",
        "/api/v1/files/both.txt",
        params={"expires_in": 10, "expires_at": "2030-01-01T00:00:00Z"},
        content=b"never stored",
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await alice.request("GET", "/api/v1/files")).json()["items"] == []
    assert stored_files(runtime.settings.data_dir / "blobs") == before  # not even an orphan for the sweeper


async def test_patch_to_year_one_expires_the_link(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(b"x")
    response = await alice.request(
        "PATCH", f"/api/v1/links/{link['id']}", json={"expires_at": "0001-01-01T00:00:00+01:00"}
    )
    assert response.status_code == 200
    assert response.json()["state"] == "expired"
    assert (await http.get(link["path"])).status_code == 410


async def test_sweeper_passes_over_files_it_did_not_make(alice: ApiClient, runtime: Runtime) -> None:
    await alice.upload(b"x")
    shard = runtime.settings.data_dir / "blobs" / "ab"
    shard.mkdir(parents=True, exist_ok=True)  # the real blob lands here one time in 256
    foreign = shard / "editor~backup"
    foreign.write_bytes(b"not ours")
    orphan = shard / ("ab" + "0" * 30)
    orphan.write_bytes(b"ours, orphaned")
    old = time.time() - (ORPHAN_AGE + timedelta(hours=1)).total_seconds()  # old enough for the safety net
    for path in (foreign, orphan):
        os.utime(path, (old, old))
    report = await sweep_once(runtime.sessions, runtime.storage, grace=timedelta(hours=1))
    assert report.orphans == 1
    assert foreign.exists()
    assert not orphan.exists()
    assert len(stored_files(runtime.settings.data_dir / "blobs")) == 2  # the real blob and the foreign file


def test_access_log_records_are_redacted() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/d/AbCdEfGhIjKlMnOpQrStUvWx?x=1", "1.1", 200),
        None,
    )
    RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /d/…?x=1 HTTP/1.1" 200'
