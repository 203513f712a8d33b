"""Plain downloads are answered in front of the framework (api.fast_download); everything else falls through to
the `/d/{token}` route with nothing counted. Both paths must give the same answers."""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from lapse.api import fast_download
from lapse.links import redemption
from lapse.middleware import DEFAULT_HEADER_FIELDS
from tests.helpers import ApiClient, downloads_of

pytestmark = pytest.mark.anyio

BODY = b"fast path bytes"
Answer = Callable[[Request, str], Awaitable[Response | None]]


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the fast path answered each download (a spy around the real function, which still runs)."""
    seen: list[bool] = []
    real: Answer = fast_download._decide_and_respond

    async def spy(request: Request, token: str) -> Response | None:
        response = await real(request, token)
        seen.append(response is not None)
        return response

    monkeypatch.setattr(fast_download, "_decide_and_respond", spy)
    return seen


async def test_a_plain_get_is_answered_in_front_and_counted_once(
    alice: ApiClient, http: httpx.AsyncClient, answered: list[bool]
) -> None:
    link = await alice.share(BODY, max_downloads=3)
    response = await http.get(link["path"])
    assert response.status_code == 200
    assert response.content == BODY
    assert answered == [True]
    assert await downloads_of(alice, link) == 1
    # What the skipped layers would have added is still there.
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["lapse-grant"]
    assert f"Path={link['path']}" in response.headers["set-cookie"]


async def test_head_and_ranged_resume_are_answered_in_front_for_free(
    alice: ApiClient, http: httpx.AsyncClient, answered: list[bool]
) -> None:
    link = await alice.share(BODY, max_downloads=1)
    head = await http.head(link["path"])
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(BODY))
    assert head.headers["lapse-downloads-remaining"] == "1"
    first = await http.get(link["path"])
    grant = first.headers["lapse-grant"]
    http.cookies.clear()
    resumed = await http.get(link["path"], headers={"Range": "bytes=5-", "Lapse-Grant": grant})
    assert resumed.status_code == 206
    assert resumed.content == BODY[5:]
    assert resumed.headers["content-range"] == f"bytes 5-{len(BODY) - 1}/{len(BODY)}"
    assert answered == [True, True, True]
    assert await downloads_of(alice, link) == 1


@pytest.mark.parametrize(
    ("setup", "status", "in_front"),
    [
        ("password", 401, False),
        ("exhausted", 410, False),
        ("not-modified", 304, True),
        ("unsatisfiable", 416, True),
        ("unknown", 404, False),
        ("prefetch", 403, False),
    ],
)
async def test_refusals_fall_through_to_the_route_and_nothing_else_counts(
    alice: ApiClient, http: httpx.AsyncClient, answered: list[bool], setup: str, status: int, in_front: bool
) -> None:
    """Refusals are answered by the route (its error pages for browsers); decisions that spend nothing (304, 416)
    are answered in front, as the route would answer them."""
    link = await alice.share(BODY, max_downloads=1, **({"password": "s3cret-pass"} if setup == "password" else {}))
    path = link["path"]
    if setup == "exhausted":
        assert (await http.get(path)).status_code == 200
        http.cookies.clear()
        answered.clear()
    file = (await alice.request("GET", f"/api/v1/files/{link['file_id']}")).json()
    etag = f'"{file["sha256"]}"'
    headers = {
        "not-modified": {"If-None-Match": etag},
        "unsatisfiable": {"Range": "bytes=999-"},
        "prefetch": {"Sec-Purpose": "prefetch"},
    }.get(setup, {})
    if setup == "unknown":
        path = "/d/" + "A" * 32
    response = await http.get(path, headers=headers)
    assert response.status_code == status
    assert answered in (([True],) if in_front else ([False], []))  # declined, or (prefetch) never asked
    assert response.headers["x-frame-options"] == "DENY"
    expected = 1 if setup == "exhausted" else 0
    assert await downloads_of(alice, link) == expected


async def test_a_bug_on_the_fast_path_is_a_problem_500_and_counts_nothing(
    alice: ApiClient, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = await alice.share(BODY, max_downloads=1)

    async def broken(request: Request, token: str) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(fast_download, "_decide_and_respond", broken)
    response = await http.get(link["path"])
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-content-type-options"] == "nosniff"  # answered in front of DefaultHeadersMiddleware
    assert response.headers["cache-control"] == "no-store"
    assert "a bug" not in response.text
    assert await downloads_of(alice, link) == 0


async def test_a_bug_behind_the_routes_is_a_problem_500_with_the_security_headers(
    alice: ApiClient, app: ASGIApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starlette's ServerErrorMiddleware answers it, outside DefaultHeadersMiddleware."""
    link = await alice.share(BODY, password="pw")  # a password link: answered by the route

    async def broken(**kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(redemption, "check_password", broken)
    # ServerErrorMiddleware re-raises after answering, for the server to log: a server's view, not the test's.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(link["path"], data={"password": "pw"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    for name, value in DEFAULT_HEADER_FIELDS.items():
        assert response.headers[name] == value
    assert "a bug" not in response.text
    assert await downloads_of(alice, link) == 0
