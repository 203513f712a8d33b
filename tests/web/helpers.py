"""A signed-in browser for the in-process app: an httpx client that keeps cookies, asks for HTML, and sends
the CSRF token and Origin our own pages would."""

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.helpers import ApiClient

ORIGIN = "http://testserver"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_field(html: str) -> str:
    match = _CSRF_FIELD.search(html)
    assert match is not None, "no CSRF field on the page"
    return match.group(1)


@dataclass
class Browser:
    http: httpx.AsyncClient
    csrf: str = ""

    async def get(self, path: str, **headers: str) -> httpx.Response:
        return await self.http.get(path, headers={**HTML, **headers})

    async def post(self, path: str, data: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
        """A form POST as our page sends it; pass csrf_token yourself to send another one (or none: "")."""
        fields = {"csrf_token": self.csrf, **(data or {})}
        if fields["csrf_token"] is None:
            del fields["csrf_token"]
        return await self.http.post(path, data=fields, headers={**HTML, "Origin": ORIGIN, **headers})

    async def sign_in(self, key: str) -> httpx.Response:
        form = await self.get("/ui/sign-in")
        assert form.status_code == 200, form.text
        answer = await self.post("/ui/sign-in", {"csrf_token": csrf_field(form.text), "key": key})
        if answer.status_code == 303:
            dashboard = await self.get("/")
            assert dashboard.status_code == 200, dashboard.text
            self.csrf = csrf_field(dashboard.text)
        return answer


NewBrowser = Callable[[], Awaitable[Browser]]


async def signed_in(new_browser: NewBrowser, owner: ApiClient) -> Browser:
    browser = await new_browser()
    answer = await browser.sign_in(owner.key)
    assert answer.status_code == 303, answer.text
    return browser
