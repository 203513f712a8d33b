"""Sign-in, the session cookie, sign-out, and CSRF / Origin checks on the web page's forms."""

import httpx
import pytest

from lapse.web.render import CSP
from tests.helpers import ApiClient
from tests.web.helpers import HTML, Browser, NewBrowser, csrf_field

pytestmark = pytest.mark.anyio


def session_cookie(response: httpx.Response) -> str:
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith("lapse_session=")]
    assert len(cookies) == 1, response.headers
    return cookies[0]


async def test_sign_in_sets_a_signed_cookie_that_names_the_key_not_the_key(
    new_browser: NewBrowser, alice: ApiClient, admin: ApiClient
) -> None:
    browser = await new_browser()
    form = await browser.get("/ui/sign-in")
    assert form.headers["content-security-policy"] == CSP
    assert form.headers["cache-control"] == "no-store"
    answer = await browser.sign_in(alice.key)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    cookie = session_cookie(answer)
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert {"httponly", "samesite=strict", "path=/"} <= set(attributes)
    assert "secure" not in attributes  # plain http here; see the https test below
    value = cookie.split(";")[0].removeprefix("lapse_session=")
    assert alice.key not in value
    assert alice.key.removeprefix("lapse_") not in value
    keys = (await admin.request("GET", "/api/v1/keys")).json()["items"]
    alice_id = next(k["id"] for k in keys if k["name"] == "alice")
    assert alice_id in value.split(".")
    dashboard = await browser.get("/")
    assert dashboard.status_code == 200
    assert "alice" in dashboard.text


async def test_cookie_is_secure_behind_https(new_browser: NewBrowser, alice: ApiClient) -> None:
    browser = await new_browser()
    https = {"X-Forwarded-Proto": "https"}  # from 127.0.0.1, a trusted proxy by default
    form = await browser.get("/ui/sign-in", **https)
    assert "secure" in form.headers["set-cookie"].lower()
    # httpx keeps Secure cookies for https only; hand the sign-in cookie over as the browser would.
    nonce = form.headers["set-cookie"].split(";")[0]
    answer = await browser.http.post(
        "/ui/sign-in",
        data={"csrf_token": csrf_field(form.text), "key": alice.key},
        headers={**HTML, **https, "Origin": "https://testserver", "Cookie": nonce},
    )
    assert answer.status_code == 303, answer.text
    assert "; secure" in session_cookie(answer).lower()


async def test_a_wrong_key_is_refused_with_the_form_again(new_browser: NewBrowser, alice: ApiClient) -> None:
    browser = await new_browser()
    answer = await browser.sign_in(alice.key + "x")
    assert answer.status_code == 401
    assert "not valid" in answer.text
    assert "Basic" not in answer.headers.get("www-authenticate", "")  # no browser password pop-up
    assert not any(c.startswith("lapse_session=") for c in answer.headers.get_list("set-cookie"))
    assert (await browser.get("/")).status_code == 303


@pytest.mark.parametrize("token", ["", "forged", None])
async def test_sign_in_without_the_forms_token_is_refused(
    new_browser: NewBrowser, alice: ApiClient, token: str | None
) -> None:
    browser = await new_browser()
    await browser.get("/ui/sign-in")
    answer = await browser.post("/ui/sign-in", {"csrf_token": token, "key": alice.key})
    assert answer.status_code == 403
    assert "lapse_session" not in answer.headers.get("set-cookie", "")


async def test_sign_in_without_the_sign_in_cookie_is_refused(new_browser: NewBrowser, alice: ApiClient) -> None:
    browser = await new_browser()
    form = await browser.get("/ui/sign-in")
    browser.http.cookies.clear()  # a token lifted from somebody else's form, without its cookie
    answer = await browser.post("/ui/sign-in", {"csrf_token": csrf_field(form.text), "key": alice.key})
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_forms_from_elsewhere_are_refused_even_with_a_token(
    alice_web: Browser, alice: ApiClient, headers: dict[str, str]
) -> None:
    file = await alice.upload(b"x")
    answer = await alice_web.post(f"/ui/files/{file['id']}/delete", None, **headers)
    assert answer.status_code == 403
    assert (await alice.request("GET", f"/api/v1/files/{file['id']}")).status_code == 200


async def test_sign_out_needs_the_token_then_ends_the_session(alice_web: Browser) -> None:
    refused = await alice_web.post("/ui/sign-out", {"csrf_token": "nope"})
    assert refused.status_code == 403
    assert (await alice_web.get("/")).status_code == 200
    answer = await alice_web.post("/ui/sign-out")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in"
    assert "max-age=0" in session_cookie(answer).lower()
    assert (await alice_web.get("/")).status_code == 303


async def test_the_sign_in_page_sends_a_signed_in_browser_home(alice_web: Browser) -> None:
    answer = await alice_web.get("/ui/sign-in")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


async def test_a_tampered_cookie_is_worthless(alice_web: Browser, admin: ApiClient) -> None:
    value = alice_web.http.cookies["lapse_session"]
    sid, _, issued, mac = value.split(".")
    keys = (await admin.request("GET", "/api/v1/keys")).json()["items"]
    root_id = next(k["id"] for k in keys if k["name"] == "root")
    alice_web.http.cookies.set("lapse_session", f"{sid}.{root_id}.{issued}.{mac}")
    answer = await alice_web.get("/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in"
    assert "max-age=0" in session_cookie(answer).lower()  # the useless cookie is dropped


async def test_revoking_the_key_ends_its_sessions(alice_web: Browser, admin: ApiClient) -> None:
    keys = (await admin.request("GET", "/api/v1/keys")).json()["items"]
    alice_id = next(k["id"] for k in keys if k["name"] == "alice")
    assert (await admin.request("DELETE", f"/api/v1/keys/{alice_id}")).status_code == 200
    assert (await alice_web.get("/")).status_code == 303
    upload = await alice_web.http.post(
        "/ui/files",
        files={"file": ("a.txt", b"a")},
        headers={"X-CSRF-Token": alice_web.csrf, "Accept": "application/json"},
    )
    assert upload.status_code == 401


async def test_browsers_are_sent_to_sign_in_and_api_clients_get_401(new_browser: NewBrowser) -> None:
    browser = await new_browser()
    page = await browser.get("/")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/sign-in"
    assert "set-cookie" not in page.headers  # no cookie came, so none is cleared (SameSite=Strict navigations)
    api = await browser.http.get("/", headers={"Accept": "*/*"})
    assert api.status_code == 401
    assert api.headers["content-type"] == "application/problem+json"
