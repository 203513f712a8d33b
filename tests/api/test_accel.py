"""LAPSE_DELIVERY=accel without nginx: which requests Lapse hands to nginx, and what the hand-over carries.
tests/server/test_accel.py runs the same through a real nginx."""

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from starlette.datastructures import Headers

from lapse.delivery import accel
from lapse.settings import Settings
from tests.helpers import ApiClient, stored_files

pytestmark = pytest.mark.anyio

BODY = os.urandom(100_000)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"delivery": "accel"})


def seen_by_nginx(headers: dict[str, str]) -> dict[str, str]:
    """What deploy/nginx/lapse.conf adds when nginx received exactly these headers."""
    return headers | {
        accel.SEEN_RANGE: f"[{headers.get('range', '')}]",
        accel.SEEN_IF_RANGE: f"[{headers.get('if-range', '')}]",
    }


def headers_of(*pairs: tuple[str, str]) -> Headers:
    return Headers(raw=[(name.encode(), value.encode()) for name, value in pairs])


@pytest.mark.parametrize(
    ("pairs", "ranges", "where"),
    [
        ([], None, accel.WHOLE),
        ([("if-none-match", '"other"'), ("if-modified-since", "Mon, 01 Jan 2024 00:00:00 GMT")], None, accel.WHOLE),
        # Lapse ignored the Range (If-Range did not match, malformed…): nginx is told to send the whole file.
        ([("range", "bytes=0-9"), ("if-range", '"old"')], None, accel.WHOLE),
        (
            [("range", "bytes=0-9"), ("lapse-accel-range", "[bytes=0-9]"), ("lapse-accel-if-range", "[]")],
            [(0, 9)],
            accel.RANGES,
        ),
        (
            [("range", "bytes=-5"), ("lapse-accel-range", "[bytes=-5]"), ("lapse-accel-if-range", "[]")],
            [(95, 99)],
            accel.RANGES,
        ),
        (
            [
                ("range", "bytes=5-"),
                ("if-range", '"e"'),
                ("lapse-accel-range", "[bytes=5-]"),
                ("lapse-accel-if-range", '["e"]'),
            ],
            [(5, 99)],
            accel.RANGES,
        ),
        # nginx received a tab our parser trimmed (it would answer 416): Lapse sends these bytes itself.
        (
            [("range", "bytes=0-9"), ("lapse-accel-range", "[bytes=0-9\t]"), ("lapse-accel-if-range", "[]")],
            [(0, 9)],
            None,
        ),
        (
            [
                ("range", "bytes=0-9"),
                ("if-range", '"e"'),
                ("lapse-accel-range", "[bytes=0-9]"),
                ("lapse-accel-if-range", '["e"\t]'),
            ],
            [(0, 9)],
            None,
        ),
        ([("range", "bytes=0-9")], [(0, 9)], None),  # no nginx vouched for what it received
        ([("range", "bytes = 0-9"), ("lapse-accel-range", "[bytes = 0-9]")], [(0, 9)], None),
        ([("range", "bytes=0-1,5-6"), ("lapse-accel-range", "[bytes=0-1,5-6]")], [(0, 1), (5, 6)], None),
        ([("range", "bytes=0-1"), ("range", "bytes=5-6")], [(0, 1)], None),
        ([("range", f"bytes=0-{'9' * 19}"), ("lapse-accel-range", f"[bytes=0-{'9' * 19}]")], [(0, 99)], None),
        # nginx judges these against its own validators: never handed over.
        ([("if-match", '"e"')], None, None),
        ([("if-match", "*")], None, None),
        ([("if-unmodified-since", "Mon, 01 Jan 2024 00:00:00 GMT")], None, None),
        ([("if-none-match", '"a"'), ("if-none-match", "*")], None, None),
    ],
)
def test_location(pairs: list[tuple[str, str]], ranges: list[tuple[int, int]] | None, where: str | None) -> None:
    assert accel.location(headers_of(*pairs), ranges) == where


async def test_a_counted_get_answers_x_accel_redirect_with_every_header(
    alice: ApiClient, http: httpx.AsyncClient, blobs: Path
) -> None:
    file = await alice.upload(BODY, "page.html", "text/html")
    link = await alice.link(file["id"], max_downloads=2)
    response = await http.get(httpx.URL(link["url"]).path)
    assert response.status_code == 200
    assert response.content == b""
    (blob,) = stored_files(blobs)
    assert response.headers["x-accel-redirect"] == f"/_lapse/blobs/whole/{blob.relative_to(blobs).as_posix()}"
    assert response.headers["etag"] == f'"{hashlib.sha256(BODY).hexdigest()}"'
    assert response.headers["content-type"] == "application/octet-stream"  # served_type: never as HTML
    assert response.headers["content-disposition"].startswith('attachment; filename="page.html"')
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "private, no-store"
    assert "last-modified" in response.headers
    assert "lapse-grant" in response.headers
    assert "lapse_grant=" in response.headers["set-cookie"]
    assert "content-range" not in response.headers
    assert (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()["downloads"] == 1


async def test_ranges_go_to_the_ranged_location_only_when_nginx_reads_them_alike(
    alice: ApiClient, http: httpx.AsyncClient
) -> None:
    link = await alice.share(BODY, max_downloads=1)
    first = await http.get(link["path"], headers=seen_by_nginx({"range": "bytes=10-"}))
    assert first.status_code == 200
    assert first.headers["x-accel-redirect"].startswith("/_lapse/blobs/ranges/")
    grant = {"lapse-grant": first.headers["lapse-grant"]}

    etag = first.headers["etag"]
    matching = await http.get(link["path"], headers=seen_by_nginx({"range": "bytes=0-9", "if-range": etag} | grant))
    assert matching.headers["x-accel-redirect"].startswith("/_lapse/blobs/ranges/")
    stale = await http.get(link["path"], headers=seen_by_nginx({"range": "bytes=0-9", "if-range": '"old"'} | grant))
    assert stale.headers["x-accel-redirect"].startswith("/_lapse/blobs/whole/")

    # Several ranges, or validators nginx would judge on its own: Lapse sends the bytes.
    multi = await http.get(link["path"], headers=seen_by_nginx({"range": "bytes=0-1,5-6"} | grant))
    assert multi.status_code == 206
    assert "x-accel-redirect" not in multi.headers
    assert multi.headers["content-type"].startswith("multipart/byteranges")
    held = await http.get(link["path"], headers={"if-match": etag} | grant)
    assert held.status_code == 200
    assert held.content == BODY
    assert "x-accel-redirect" not in held.headers
    assert (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()["downloads"] == 1


async def test_head_304_and_416_never_reach_nginx(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(BODY, max_downloads=1)
    head = await http.head(link["path"])
    assert head.status_code == 200
    assert "x-accel-redirect" not in head.headers
    assert head.headers["lapse-downloads-remaining"] == "1"
    etag = head.headers["etag"]
    not_modified = await http.get(link["path"], headers={"if-none-match": etag})
    assert not_modified.status_code == 304
    assert "x-accel-redirect" not in not_modified.headers
    beyond = await http.get(link["path"], headers=seen_by_nginx({"range": f"bytes={len(BODY)}-"}))
    assert beyond.status_code == 416
    assert "x-accel-redirect" not in beyond.headers
    assert (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()["downloads"] == 0
