"""The dashboard: uploads through the session, making, revoking and deleting, escaping, and the CSP."""

import re
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from lapse.web.render import CSP
from lapse.web.routes import LINKS_PER_FILE
from tests.helpers import ApiClient
from tests.web.helpers import Browser

pytestmark = pytest.mark.anyio

HOSTILE_NAME = "<img src=x onerror=alert(1)>.txt"
HOSTILE_NOTE = '<script>alert("note")</script>'


async def web_upload(
    browser: Browser, content: bytes, name: str, content_type: str = "text/plain", **headers: str
) -> httpx.Response:
    return await browser.http.post(
        "/ui/files",
        files={"file": (name, content, content_type)},
        headers={"X-CSRF-Token": browser.csrf, "Accept": "application/json", "Origin": "http://testserver", **headers},
    )


async def links_of(owner: ApiClient, file_id: str) -> list[dict[str, Any]]:
    response = await owner.request("GET", "/api/v1/links", params={"file_id": file_id})
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_upload_streams_through_the_session(alice_web: Browser, alice: ApiClient) -> None:
    answer = await web_upload(alice_web, b"hello web", "greeting.txt")
    assert answer.status_code == 201, answer.text
    file = answer.json()
    assert file["name"] == "greeting.txt"
    assert file["size"] == 9
    listed = (await alice.request("GET", "/api/v1/files")).json()["items"]
    assert [f["id"] for f in listed] == [file["id"]]
    page = await alice_web.get("/")
    assert "greeting.txt" in page.text


@pytest.mark.parametrize("token", ["", "wrong"])
async def test_upload_without_the_csrf_header_is_refused(alice_web: Browser, alice: ApiClient, token: str) -> None:
    answer = await web_upload(alice_web, b"x", "x.txt", **{"X-CSRF-Token": token})
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"  # the uploader script reads `detail`
    assert (await alice.request("GET", "/api/v1/files")).json()["items"] == []


async def test_upload_over_the_limit_is_refused(alice_web: Browser, alice: ApiClient) -> None:
    answer = await web_upload(alice_web, b"x" * (1024 * 1024 + 1), "big.bin")
    assert answer.status_code == 413
    assert (await alice.request("GET", "/api/v1/files")).json()["items"] == []


async def test_the_api_still_wants_a_key_not_a_session(alice_web: Browser) -> None:
    answer = await alice_web.http.get("/api/v1/files")
    assert answer.status_code == 401


async def test_making_a_link_shows_its_urls_and_qr_code_once(alice_web: Browser, alice: ApiClient) -> None:
    file = await alice.upload(b"report", name="report.txt")
    answer = await alice_web.post(
        f"/ui/files/{file['id']}/links",
        {"expires": "1d", "max_downloads": "1", "password": "", "note": "for Sam"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["cache-control"] == "no-store"
    share = re.search(r'value="(http://testserver/s/[\w-]+)"', answer.text)
    download = re.search(r'value="(http://testserver/d/[\w-]+)"', answer.text)
    assert share is not None
    assert download is not None
    assert share.group(1).rsplit("/", 1)[1] == download.group(1).rsplit("/", 1)[1]  # one token, two pages
    assert 'src="data:image/svg+xml' in answer.text
    [link] = await links_of(alice, file["id"])
    assert link["max_downloads"] == 1
    assert link["note"] == "for Sam"
    assert not link["has_password"]
    # The dashboard lists it with its state and count, but not its URL: only the token's hash is kept.
    page = await alice_web.get("/")
    assert "for Sam" in page.text
    assert share.group(1).rsplit("/", 1)[1] not in page.text


@pytest.mark.parametrize(
    ("fields", "seconds"),
    [
        ({"expires": "10m"}, 600),
        ({"expires": "7d"}, 7 * 86400),
        ({"expires": "custom", "custom_amount": "90", "custom_unit": "minutes"}, 5400),
        ({"expires": "custom", "custom_amount": "400", "custom_unit": "days"}, 30 * 86400),  # capped at max TTL
    ],
)
async def test_expiry_presets_and_custom_times(
    alice_web: Browser, alice: ApiClient, fields: dict[str, str], seconds: int
) -> None:
    file = await alice.upload(b"x")
    answer = await alice_web.post(f"/ui/files/{file['id']}/links", fields)
    assert answer.status_code == 201, answer.text
    [link] = await links_of(alice, file["id"])
    lifetime = datetime.fromisoformat(link["expires_at"]) - datetime.fromisoformat(link["created_at"])
    assert abs(lifetime.total_seconds() - seconds) < 5


async def test_password_links_are_made_with_a_password(alice_web: Browser, alice: ApiClient) -> None:
    file = await alice.upload(b"x")
    await alice_web.post(f"/ui/files/{file['id']}/links", {"password": "open sesame"})
    [link] = await links_of(alice, file["id"])
    assert link["has_password"]


@pytest.mark.parametrize(
    "fields",
    [
        {"expires": "forever"},
        {"expires": "custom", "custom_amount": "0", "custom_unit": "days"},
        {"expires": "custom", "custom_amount": "3", "custom_unit": "fortnights"},
        {"max_downloads": "0"},
        {"max_downloads": "lots"},
        {"note": "n" * 1001},
    ],
)
async def test_bad_link_forms_get_a_400_page(alice_web: Browser, alice: ApiClient, fields: dict[str, str]) -> None:
    file = await alice.upload(b"x")
    answer = await alice_web.post(f"/ui/files/{file['id']}/links", fields)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert await links_of(alice, file["id"]) == []


async def test_actions_need_the_csrf_token(alice_web: Browser, alice: ApiClient) -> None:
    file = await alice.upload(b"x")
    link = await alice.link(file["id"])
    for path in (f"/ui/files/{file['id']}/links", f"/ui/links/{link['id']}/revoke", f"/ui/files/{file['id']}/delete"):
        for token in (None, "", "x" * 43):
            assert (await alice_web.post(path, {"csrf_token": token})).status_code == 403, path
    assert len(await links_of(alice, file["id"])) == 1
    assert (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()["state"] == "active"


async def test_a_csrf_token_is_bound_to_its_session(alice_web: Browser, admin_web: Browser, alice: ApiClient) -> None:
    file = await alice.upload(b"x")
    answer = await alice_web.post(f"/ui/files/{file['id']}/delete", {"csrf_token": admin_web.csrf})
    assert answer.status_code == 403


async def test_revoke_and_delete(alice_web: Browser, alice: ApiClient) -> None:
    file = await alice.upload(b"x")
    link = await alice.link(file["id"])
    revoked = await alice_web.post(f"/ui/links/{link['id']}/revoke")
    assert revoked.status_code == 303
    assert revoked.headers["location"] == f"/#file-{file['id']}"
    assert (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()["state"] == "revoked"
    deleted = await alice_web.post(f"/ui/files/{file['id']}/delete")
    assert deleted.status_code == 303
    assert (await alice.request("GET", f"/api/v1/files/{file['id']}")).status_code == 404


async def test_another_owners_things_are_not_found(alice_web: Browser, bob: ApiClient) -> None:
    file = await bob.upload(b"bob's", name="bobs-secret.txt")
    link = await bob.link(file["id"])
    for path in (f"/ui/links/{link['id']}/revoke", f"/ui/files/{file['id']}/delete", f"/ui/files/{file['id']}/links"):
        answer = await alice_web.post(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
    assert (await bob.request("GET", f"/api/v1/links/{link['id']}")).json()["state"] == "active"
    assert "bobs-secret.txt" not in (await alice_web.get("/")).text


async def test_user_strings_are_escaped(alice_web: Browser, alice: ApiClient) -> None:
    uploaded = await web_upload(alice_web, b"boo", HOSTILE_NAME)
    file = uploaded.json()
    assert file["name"] == HOSTILE_NAME  # kept as it was given: it is data, shown escaped
    created = await alice_web.post(f"/ui/files/{file['id']}/links", {"note": HOSTILE_NOTE})
    page = await alice_web.get("/")
    for html in (page.text, created.text):
        assert "<img src=x" not in html
        assert "<script>alert" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;.txt" in html
        assert "&lt;script&gt;alert(&#34;note&#34;)&lt;/script&gt;" in html


async def test_pages_carry_the_csp_and_no_inline_script_or_style(alice_web: Browser, alice: ApiClient) -> None:
    file = await alice.upload(b"x")
    await alice.link(file["id"], max_downloads=2)
    page = await alice_web.get("/")
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "same-origin"  # so that our forms' POSTs carry their Origin
    assert page.headers["x-frame-options"] == "DENY"
    assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None
    assert " style=" not in page.text
    assert "<style" not in page.text
    assert re.search(r"\son\w+=", page.text) is None


async def test_static_files_are_served(alice_web: Browser) -> None:
    for name, kind in (("lapse.css", "text/css"), ("lapse.js", "javascript"), ("upload.js", "javascript")):
        answer = await alice_web.http.get(f"/static/{name}")
        assert answer.status_code == 200
        assert kind in answer.headers["content-type"]
        assert answer.headers["x-content-type-options"] == "nosniff"


async def test_an_uploaded_page_never_runs_on_our_origin(alice_web: Browser, alice: ApiClient) -> None:
    for name, declared in (("page.html", "text/html"), ("image.svg", "image/svg+xml")):  # as a browser declares
        file = (await web_upload(alice_web, b"<script>alert(1)</script>", name, declared)).json()
        link = await alice.link(file["id"])
        served = await alice_web.http.get(httpx.URL(link["url"]).path)
        assert served.headers["content-type"] == "application/octet-stream"
        assert served.headers["content-disposition"].startswith("attachment;")
        assert served.headers["content-security-policy"] == "sandbox"


async def test_the_page_reads_every_files_links_in_one_query(alice_web: Browser, alice: ApiClient) -> None:
    many = await alice.upload(b"many", name="many.txt")
    made = [(await alice.link(many["id"]))["id"] for _ in range(LINKS_PER_FILE + 2)]
    one = await alice.upload(b"one", name="one.txt")
    single = (await alice.link(one["id"]))["id"]
    await alice.upload(b"none", name="none.txt")
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        page = (await alice_web.get("/")).text
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert len([s for s in statements if re.search(r"\bFROM links\b", s)]) == 1, statements
    shown = re.findall(r"/ui/links/([A-Za-z0-9_-]+)/revoke", page)
    assert set(shown) == {*made[2:], single}  # the newest LINKS_PER_FILE of each, the two oldest left out
    assert f"Showing the newest {LINKS_PER_FILE} links." in page
