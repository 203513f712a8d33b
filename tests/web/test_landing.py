"""/s/{token} never counts; dead links get a friendly 410 that says why; /d/ errors negotiate HTML vs problem+json."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from lapse.db.base import utc_now
from lapse.db.models import Link
from lapse.db.session import transaction
from lapse.runtime import Runtime
from lapse.web.render import CSP
from tests.helpers import ApiClient
from tests.web.helpers import HTML, NewBrowser

pytestmark = pytest.mark.anyio


def landing(link: dict[str, Any]) -> str:
    path: str = link["path"]
    return path.replace("/d/", "/s/")


async def state_of(owner: ApiClient, link: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = (await owner.request("GET", f"/api/v1/links/{link['id']}")).json()
    return body


async def test_the_landing_page_never_counts(alice: ApiClient, new_browser: NewBrowser) -> None:
    link = await alice.share(b"x" * 2048, name="plans.pdf", max_downloads=1)
    browser = await new_browser()
    for _ in range(3):
        page = await browser.get(landing(link))
        assert page.status_code == 200
        assert "plans.pdf" in page.text
        assert "2 KB" in page.text
        assert "1 of 1" in page.text
        assert f'href="{link["path"]}"' in page.text
    # Not even a client that asks for JSON, or a link-preview bot's plain GET, spends it.
    assert (await browser.http.get(landing(link), headers={"Accept": "*/*"})).status_code == 200
    assert (await state_of(alice, link))["downloads"] == 0
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"  # the token is in this page's URL
    assert "noindex" in page.headers["x-robots-tag"]
    download = await browser.http.get(link["path"])
    assert download.status_code == 200
    assert (await state_of(alice, link))["downloads"] == 1


async def test_a_password_link_shows_a_form_that_posts_to_the_download(
    alice: ApiClient, new_browser: NewBrowser
) -> None:
    link = await alice.share(b"secret", password="open sesame")
    page = await (await new_browser()).get(landing(link))
    assert page.status_code == 200
    assert f'<form class="password-form" method="post" action="{link["path"]}">' in page.text
    assert 'name="password"' in page.text


async def test_unknown_links_get_a_plain_404_page(new_browser: NewBrowser) -> None:
    browser = await new_browser()
    for path in ("/s/" + "A" * 32, "/s/not-a-token", "/d/" + "A" * 32):
        page = await browser.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
        assert "Link not found" in page.text


async def kill(runtime: Runtime, owner: ApiClient, new_browser: NewBrowser, link: dict[str, Any], how: str) -> None:
    match how:
        case "expired":
            async with transaction(runtime.sessions) as session:
                past = utc_now() - timedelta(seconds=1)
                await session.execute(update(Link).where(Link.id == link["id"]).values(expires_at=past))
        case "exhausted":
            assert (await (await new_browser()).http.get(link["path"])).status_code == 200
        case "revoked":
            assert (await owner.request("DELETE", f"/api/v1/links/{link['id']}")).status_code == 200
        case "file_deleted":
            assert (await owner.request("DELETE", f"/api/v1/files/{link['file_id']}")).status_code == 204


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("expired", "This link has expired"),
        ("exhausted", "This link has been used up"),
        ("revoked", "This link was revoked"),
        ("file_deleted", "The file was deleted"),
    ],
)
async def test_dead_links_get_a_410_page_that_says_why(
    alice: ApiClient, runtime: Runtime, new_browser: NewBrowser, how: str, says: str
) -> None:
    link = await alice.share(b"x", name="gone.txt", max_downloads=1)
    await kill(runtime, alice, new_browser, link, how)
    browser = await new_browser()
    for path in (landing(link), link["path"]):  # the landing page, and a browser opening the download itself
        page = await browser.get(path)
        assert page.status_code == 410, path
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
        assert says in page.text
        assert "gone.txt" not in page.text
    api = await browser.http.get(link["path"])  # httpx's default Accept is */*: problem+json
    assert api.status_code == 410
    assert api.headers["content-type"] == "application/problem+json"
    assert api.json()["reason"] == how


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (HTML["Accept"], True),
        ("text/html", True),
        ("*/*", False),
        ("", False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0.2, application/json;q=0.9", False),
        ("text/*, application/json;q=0.5", True),
    ],
)
async def test_download_errors_negotiate(new_browser: NewBrowser, accept: str, html: bool) -> None:
    browser = await new_browser()
    answer = await browser.http.get("/d/" + "B" * 32, headers={"Accept": accept})
    assert answer.status_code == 404
    assert answer.headers["cache-control"] == "no-store"
    expected = "text/html" if html else "application/problem+json"
    assert answer.headers["content-type"].startswith(expected)
    if html:
        assert answer.headers["vary"] == "Accept"
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")


async def test_password_errors_in_a_browser_show_the_form_again(alice: ApiClient, new_browser: NewBrowser) -> None:
    link = await alice.share(b"secret bytes", name="vault.txt", password="open sesame")
    browser = await new_browser()
    needed = await browser.get(link["path"])
    assert needed.status_code == 401
    assert "vault.txt" in needed.text
    assert 'name="password"' in needed.text
    assert "Basic" not in needed.headers["www-authenticate"]  # no browser pop-up over our form
    wrong = await browser.post(link["path"], {"csrf_token": None, "password": "guess"})
    assert wrong.status_code == 401
    assert "The password is not right." in wrong.text
    right = await browser.post(link["path"], {"csrf_token": None, "password": "open sesame"})
    assert right.status_code == 200
    assert right.content == b"secret bytes"
    assert (await state_of(alice, link))["downloads"] == 1


async def test_too_many_wrong_passwords_in_a_browser(alice: ApiClient, new_browser: NewBrowser) -> None:
    link = await alice.share(b"x", password="right")
    browser = await new_browser()
    for _ in range(5):
        assert (await browser.post(link["path"], {"csrf_token": None, "password": "wrong"})).status_code == 401
    limited = await browser.post(link["path"], {"csrf_token": None, "password": "wrong"})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "Too many wrong passwords" in limited.text
    assert limited.headers["content-type"].startswith("text/html")
    api = await browser.http.post(link["path"], data={"password": "wrong"}, headers={"Accept": "*/*"})
    assert api.status_code == 429
    assert api.headers["content-type"] == "application/problem+json"
