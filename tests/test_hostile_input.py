"""Hostile bytes in cookies, headers, forms and query strings get a 4xx, never a 500 (found in review)."""

import logging
import os
import time
from datetime import timedelta

import httpx
import pytest

from lapse.logs import RedactTokens
from lapse.runtime import Runtime
from lapse.sweeper import sweep_once
from tests.helpers import ApiClient, stored_files

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
    old = time.time() - 7200
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
