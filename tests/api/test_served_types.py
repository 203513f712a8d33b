"""Downloads carry an allowlisted Content-Type or application/octet-stream: script and XML types declared at
upload are never echoed back (a blocklist missed every one of REPORTED)."""

import httpx
import pytest

from tests.helpers import ApiClient

pytestmark = pytest.mark.anyio

PAYLOAD = b"<script>alert(document.domain)</script>"
REPORTED = [
    "application/x-javascript",
    "text/x-javascript",
    "text/jscript",
    "application/x-ecmascript",
    "text/livescript",
    "application/rss+xml",
    "application/xslt+xml",
    "application/atom+xml",
    "text/css",
    "Text/X-JavaScript; charset=utf-8",
]
ALLOWED = ["image/png", "audio/mpeg", "video/mp4", "text/plain", "application/zip", "application/json"]


async def served_as(alice: ApiClient, http: httpx.AsyncClient, declared: str) -> httpx.Response:
    file = await alice.upload(PAYLOAD, name="payload.bin", content_type=declared)
    link = await alice.link(file["id"])
    http.cookies.clear()
    response = await http.get(httpx.URL(link["url"]).path)
    assert response.status_code == 200
    assert response.content == PAYLOAD
    return response


@pytest.mark.parametrize("declared", REPORTED)
async def test_script_and_xml_types_are_served_as_octet_stream(
    alice: ApiClient, http: httpx.AsyncClient, declared: str
) -> None:
    response = await served_as(alice, http, declared)
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith("attachment;")


@pytest.mark.parametrize("declared", ALLOWED)
async def test_inert_types_are_echoed(alice: ApiClient, http: httpx.AsyncClient, declared: str) -> None:
    response = await served_as(alice, http, declared)
    assert response.headers["content-type"] == declared


@pytest.mark.parametrize(
    ("declared", "stored"),
    [
        ("Text/X-JavaScript; charset=utf-8", "text/x-javascript"),  # what the owner said, bare; never served
        ("image/png,text/html", "application/octet-stream"),  # a list is no type at all
        ("image", "application/octet-stream"),
    ],
)
async def test_the_file_records_the_declared_bare_type(
    alice: ApiClient, http: httpx.AsyncClient, declared: str, stored: str
) -> None:
    file = await alice.upload(PAYLOAD, name="payload.bin", content_type=declared)
    assert file["content_type"] == stored
    assert (await served_as(alice, http, declared)).headers["content-type"] == "application/octet-stream"
