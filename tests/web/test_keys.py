"""/ui/keys: admins only; a new key is shown once and works; revoking one ends it."""

import re

import pytest

from tests.helpers import ApiClient
from tests.web.helpers import Browser

pytestmark = pytest.mark.anyio

HOSTILE_KEY_NAME = '"><svg onload=alert(1)>'


async def test_only_admins_see_the_keys_page(alice_web: Browser) -> None:
    answer = await alice_web.get("/ui/keys")
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert 'href="/ui/keys"' not in (await alice_web.get("/")).text  # and no menu entry for it
    created = await alice_web.post("/ui/keys", {"name": "sneaky", "admin": "on"})
    assert created.status_code == 403


async def test_admins_issue_list_and_revoke_keys(admin_web: Browser, admin: ApiClient) -> None:
    page = await admin_web.get("/ui/keys")
    assert page.status_code == 200
    assert "root" in page.text
    created = await admin_web.post("/ui/keys", {"name": "backup script"})
    assert created.status_code == 201
    match = re.search(r'value="(lapse_[\w-]+)"', created.text)
    assert match is not None
    new_key = ApiClient(admin.http, match.group(1))
    assert (await new_key.request("GET", "/api/v1/files")).status_code == 200
    keys = (await admin.request("GET", "/api/v1/keys")).json()["items"]
    backup = next(k for k in keys if k["name"] == "backup script")
    assert backup["admin"] is False
    assert match.group(1) not in (await admin_web.get("/ui/keys")).text  # shown once only
    revoked = await admin_web.post(f"/ui/keys/{backup['id']}/revoke")
    assert revoked.status_code == 303
    assert (await new_key.request("GET", "/api/v1/files")).status_code == 401


async def test_key_names_are_escaped(admin_web: Browser) -> None:
    created = await admin_web.post("/ui/keys", {"name": HOSTILE_KEY_NAME, "admin": "on"})
    assert created.status_code == 201
    page = await admin_web.get("/ui/keys")
    for html in (created.text, page.text):
        assert "<svg onload" not in html
        assert "&#34;&gt;&lt;svg onload=alert(1)&gt;" in html


async def test_creating_a_key_needs_a_name_and_the_token(admin_web: Browser) -> None:
    assert (await admin_web.post("/ui/keys", {"name": "  "})).status_code == 400
    assert (await admin_web.post("/ui/keys", {"name": "k", "csrf_token": ""})).status_code == 403
