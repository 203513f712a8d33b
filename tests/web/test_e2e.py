"""The web page end to end: Debian's Chromium, driven by Playwright, against a real `lapse serve`.

Plain sync tests on purpose: Playwright's sync API runs its own event loop and cannot run inside another.
Screenshots land in artifacts/screenshots/ (two of them are copied into docs/screenshots/ for the README).
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, FilePayload, Page, Route, expect, sync_playwright

from tests.process import LapseServer, fresh_database

pytestmark = pytest.mark.server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HOSTILE_NAME = "<img src=x onerror=alert(1)>.txt"
HOSTILE_NOTE = "<b onmouseover=alert(2)>bold</b>"


@dataclass
class Site:
    server: LapseServer
    admin_key: str

    @property
    def url(self) -> str:
        return self.server.url

    def new_key(self, name: str) -> str:
        """A key of its own per test, so that each dashboard shows only that test's files."""
        answer = httpx.post(
            f"{self.url}/api/v1/keys",
            json={"name": name},
            headers={"Authorization": f"Bearer {self.admin_key}"},
            trust_env=False,
        )
        assert answer.status_code == 201, answer.text
        key: str = answer.json()["key"]
        return key

    def api(self, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, trust_env=False, **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web-e2e")
    with fresh_database("sqlite", root) as url:
        server = LapseServer(root, url, workers=1)
        admin_key = server.create_key("e2e admin", admin=True)
        server.start()
        try:
            yield Site(server, admin_key)
        finally:
            server.stop()
            print(server.logs())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # executable_path: Debian's chromium package; Playwright never downloads a browser of its own here.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Windows:
    """Browser contexts for one test. Any JavaScript dialog on any of their pages fails the test."""

    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def page(self, viewport: dict[str, int] = DESKTOP, **options: Any) -> Page:
        context = self.browser.new_context(viewport=viewport, **options)  # type: ignore[arg-type]
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("dialog", self._on_dialog)
        return page

    def phone(self, **options: Any) -> Page:
        return self.page(PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, **options)

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@pytest.fixture
def windows(browser: Browser) -> Iterator[Windows]:
    opened = Windows(browser)
    yield opened
    for context in opened.contexts:
        context.close()
    assert opened.dialogs == [], "a page opened a JavaScript dialog"


def sign_in(windows: Windows, site: Site, key: str) -> Page:
    page = windows.page()
    page.goto(f"{site.url}/")
    expect(page).to_have_url(f"{site.url}/ui/sign-in")
    page.fill("#key", key)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{site.url}/")
    expect(page.get_by_role("heading", name="Files", exact=True)).to_be_visible()
    return page


def upload(page: Page, files: dict[str, bytes]) -> None:
    """Through the picker, as a person would; wait for every progress bar to finish and the list to show all."""
    page.set_input_files(
        "[data-picker]",
        files=[FilePayload(name=name, mimeType="text/plain", buffer=content) for name, content in files.items()],
    )
    done = page.locator(".uploads .upload[data-state=done]")
    expect(done).to_have_count(len(files))
    for bar in done.locator("progress").all():
        expect(bar).to_have_attribute("value", "100")
    for name in files:
        expect(file_card(page, name)).to_be_visible()


def file_card(page: Page, name: str) -> Any:
    return page.locator("#files article.file").filter(has=page.get_by_role("heading", name=name, exact=True))


def make_link(page: Page, file_name: str, *, max_downloads: str = "", password: str = "", note: str = "") -> str:
    """Make a link from the file's card; answers the share page's URL (shown only on the page that follows)."""
    card = file_card(page, file_name)
    card.locator("summary", has_text="New link").click()
    form = card.locator("form.link-form")
    form.locator("input[name=max_downloads]").fill(max_downloads)
    form.locator("input[name=password]").fill(password)
    form.locator("input[name=note]").fill(note)
    form.get_by_role("button", name="Create link").click()
    expect(page.get_by_role("heading", name="Link ready")).to_be_visible()
    share_url = page.input_value("#share-url")
    assert share_url.startswith(f"{page.url.split('/ui/')[0]}/s/")
    assert page.input_value("#download-url") == share_url.replace("/s/", "/d/")
    return share_url


def download_bytes(page: Page, click: Any) -> bytes:
    with page.expect_download() as download_info:
        click()
    path = download_info.value.path()
    return Path(path).read_bytes()


def test_share_a_one_time_link_with_a_recipient(windows: Windows, site: Site) -> None:
    owner = sign_in(windows, site, site.new_key("e2e one-time"))
    contents = {"notes.txt": b"first file\n" * 100, "data.csv": b"a,b\n1,2\n" * 500}
    upload(owner, contents)

    share_url = make_link(owner, "notes.txt", max_downloads="1")
    expect(owner.locator("img[alt^='QR code']")).to_be_visible()

    recipient = windows.page()  # a second browser context: no session, no cookies
    landing = recipient.goto(share_url)
    assert landing is not None
    assert landing.status == 200
    expect(recipient.get_by_role("heading", name="notes.txt")).to_be_visible()
    expect(recipient.locator("[data-remaining]")).to_have_text("1 of 1")
    expect(recipient.locator(".countdown")).to_contain_text("in ")
    recipient.reload()  # looking never spends: still one left
    expect(recipient.locator("[data-remaining]")).to_have_text("1 of 1")

    assert (
        download_bytes(recipient, lambda: recipient.get_by_role("link", name="Download").click())
        == contents["notes.txt"]
    )

    again = recipient.reload()
    assert again is not None
    assert again.status == 410
    expect(recipient.get_by_role("heading", name="This link has been used up")).to_be_visible()

    owner.goto(f"{site.url}/")
    row = file_card(owner, "notes.txt").locator("li.link")
    expect(row.locator(".badge-exhausted")).to_be_visible()
    expect(row).to_contain_text("1 / 1 downloads")


def test_password_link(windows: Windows, site: Site) -> None:
    owner = sign_in(windows, site, site.new_key("e2e password"))
    upload(owner, {"vault.txt": b"the secret plans"})
    share_url = make_link(owner, "vault.txt", password="correct horse")

    recipient = windows.page()
    recipient.goto(share_url)
    expect(recipient.get_by_role("heading", name="vault.txt")).to_be_visible()
    expect(recipient.get_by_role("link", name="Download")).to_have_count(0)

    recipient.fill("#password", "wrong guess")
    recipient.get_by_role("button", name="Download").click()
    expect(recipient.get_by_role("alert")).to_have_text("The password is not right.")

    recipient.fill("#password", "correct horse")
    content = download_bytes(recipient, lambda: recipient.get_by_role("button", name="Download").click())
    assert content == b"the secret plans"


def test_files_picked_before_the_upload_script_ran_are_uploaded(windows: Windows, site: Site) -> None:
    owner = sign_in(windows, site, site.new_key("e2e early pick"))
    held: list[Route] = []

    def hold(route: Route) -> None:  # the deferred script waits until the file is picked
        held.append(route)

    owner.route("**/static/upload.js", hold)
    owner.goto(f"{site.url}/", wait_until="commit")
    deadline = time.monotonic() + 15
    while not held:  # until the script is provably held: then it cannot have run before the pick below
        assert time.monotonic() < deadline, "the page never asked for upload.js"
        owner.wait_for_timeout(20)  # lets Playwright dispatch the route handler
    owner.locator("[data-picker]").wait_for(state="attached")
    owner.set_input_files("[data-picker]", files=[FilePayload(name="early.txt", mimeType="text/plain", buffer=b"x")])
    [script] = held
    script.continue_()
    expect(owner.locator(".uploads .upload[data-state=done]")).to_have_count(1)
    expect(file_card(owner, "early.txt")).to_be_visible()


def test_hostile_names_are_shown_as_text(windows: Windows, site: Site) -> None:
    owner = sign_in(windows, site, site.new_key("e2e hostile"))
    upload(owner, {HOSTILE_NAME: b"harmless"})
    expect(owner.locator("img[src=x]")).to_have_count(0)
    expect(owner.locator(".uploads .upload-name")).to_have_text(HOSTILE_NAME)

    share_url = make_link(owner, HOSTILE_NAME, note=HOSTILE_NOTE)
    expect(owner.locator("[data-file-name]")).to_have_text(HOSTILE_NAME)
    owner.goto(f"{site.url}/")
    expect(file_card(owner, HOSTILE_NAME).locator(".link-label")).to_have_text(HOSTILE_NOTE)
    expect(owner.locator("img[src=x], b[onmouseover]")).to_have_count(0)
    owner.locator(".link-label").hover()

    recipient = windows.page()
    recipient.goto(share_url)
    expect(recipient.get_by_role("heading", level=1)).to_have_text(HOSTILE_NAME)
    expect(recipient.locator("img[src=x]")).to_have_count(0)
    # (the `windows` fixture fails the test if any of this fired a dialog)


def test_revoke(windows: Windows, site: Site) -> None:
    owner = sign_in(windows, site, site.new_key("e2e revoke"))
    upload(owner, {"draft.txt": b"draft"})
    share_url = make_link(owner, "draft.txt", note="to revoke")
    owner.goto(f"{site.url}/")
    row = file_card(owner, "draft.txt").locator("li.link", has_text="to revoke")
    expect(row.locator(".badge-active")).to_be_visible()
    row.get_by_role("button", name="Revoke").click()
    expect(row.locator(".badge-revoked")).to_be_visible()

    recipient = windows.page()
    answer = recipient.goto(share_url)
    assert answer is not None
    assert answer.status == 410
    expect(recipient.get_by_role("heading", name="This link was revoked")).to_be_visible()


def test_screenshots(windows: Windows, site: Site) -> None:
    """The dashboard and the landing page at desktop and phone widths, with a few files and links in each state."""
    key = site.new_key("sam")
    files = {
        "site-backup-2026-11.tar.gz": 18_400_000,
        "holiday photos.zip": 3_400_000,
        "quarterly-report.pdf": 48_213,
    }
    ids = {}
    for name, size in files.items():
        answer = site.api(key, "POST", "/api/v1/files", files={"file": (name, b"\0" * size)})
        assert answer.status_code == 201, answer.text
        ids[name] = answer.json()["id"]
    shared = site.api(
        key,
        "POST",
        f"/api/v1/files/{ids['quarterly-report.pdf']}/links",
        json={"expires_in": 7 * 86400, "max_downloads": 3, "note": "for the board"},
    ).json()
    site.api(
        key,
        "POST",
        f"/api/v1/files/{ids['quarterly-report.pdf']}/links",
        json={"expires_in": 600, "password": "pw", "note": "Alex, by phone"},
    )
    used = site.api(
        key, "POST", f"/api/v1/files/{ids['holiday photos.zip']}/links", json={"max_downloads": 1, "note": "family"}
    ).json()
    assert httpx.get(used["url"], trust_env=False).status_code == 200
    site.api(
        key, "POST", f"/api/v1/files/{ids['holiday photos.zip']}/links", json={"expires_in": 86400, "note": "friends"}
    )

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    owner = sign_in(windows, site, key)
    file_card(owner, "site-backup-2026-11.tar.gz").locator("summary", has_text="New link").click()
    owner.screenshot(path=SCREENSHOTS / "dashboard-desktop.png", full_page=True)

    phone_owner = windows.phone(storage_state=owner.context.storage_state())
    phone_owner.goto(f"{site.url}/")
    phone_owner.screenshot(path=SCREENSHOTS / "dashboard-phone.png", full_page=True)

    landing_url = shared["url"].replace("/d/", "/s/")
    for page, name in ((windows.page(), "landing-desktop.png"), (windows.phone(), "landing-phone.png")):
        page.goto(landing_url)
        expect(page.get_by_role("heading", name="quarterly-report.pdf")).to_be_visible()
        page.screenshot(path=SCREENSHOTS / name, full_page=True)
    for name in ("dashboard-desktop.png", "dashboard-phone.png", "landing-desktop.png", "landing-phone.png"):
        assert (SCREENSHOTS / name).stat().st_size > 10_000, name
