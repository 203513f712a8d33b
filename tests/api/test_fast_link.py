"""New links are minted in front of the framework (api.fast_link) in the common case; everything else falls
through to the route with nothing stored twice. Both paths must give the same answers."""

import asyncio
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from lapse.api import fast_link
from lapse.db.base import utc_now
from lapse.db.session import transaction
from lapse.keys import service as keys_service
from lapse.keys.repository import KeyRepository
from lapse.runtime import Runtime
from tests.helpers import ApiClient

pytestmark = pytest.mark.anyio


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the fast path answered each POST it was offered (a spy around the real function, which runs)."""
    seen: list[bool] = []
    real = fast_link._mint

    async def spy(request: Request, file_id: str, body: fast_link.Body) -> Response | None:
        response = await real(request, file_id, body)
        seen.append(response is not None)
        return response

    monkeypatch.setattr(fast_link, "_mint", spy)
    return seen


async def links_of(client: ApiClient, file_id: str) -> list[dict[str, Any]]:
    listed = await client.request("GET", "/api/v1/links", params={"file_id": file_id})
    assert listed.status_code == 200
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


async def test_a_plain_link_is_minted_in_front_and_stored_once(
    alice: ApiClient, http: httpx.AsyncClient, answered: list[bool]
) -> None:
    file = await alice.upload(b"x")
    response = await alice.request(
        "POST", f"/api/v1/files/{file['id']}/links", json={"max_downloads": 2, "note": "for Carol"}
    )
    assert response.status_code == 201
    assert answered == [True]
    link = response.json()
    assert link["file_id"] == file["id"]
    assert (link["max_downloads"], link["remaining"], link["note"], link["state"]) == (2, 2, "for Carol", "active")
    # What the skipped layers would have added is still there.
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert [item["id"] for item in await links_of(alice, file["id"])] == [link["id"]]
    # The link works, and the stored row says what the answer said.
    assert (await http.get(link["url"])).status_code == 200
    read = (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()
    assert read | {"url": None, "page_url": None, "downloads": 0, "remaining": 2} == link | {
        "url": None,
        "page_url": None,
    }


async def test_both_paths_answer_the_same_shape(alice: ApiClient, answered: list[bool]) -> None:
    file = await alice.upload(b"x")
    fast = await alice.link(file["id"], expires_in=600)
    framework = await alice.link(file["id"], expires_in=600, password="pw")  # a password is left to the route
    assert answered == [True, False]
    assert list(fast) == list(framework)
    assert (fast["has_password"], framework["has_password"]) == (False, True)


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"max_downloads": 0}', {"content-type": "application/json"}, 422),
        (b"{not json", {"content-type": "application/json"}, 422),
        (b'{"expires_in": 1, "expires_at": "2030-01-01T00:00:00Z"}', {"content-type": "application/json"}, 422),
        (b'{"expires_at": "2001-01-01T00:00:00Z"}', {"content-type": "application/json"}, 400),
        (b'{"note": "' + b"n" * 40_000 + b'"}', {"content-type": "application/json"}, 422),  # past MAX_BODY
        (b"max_downloads=1", {"content-type": "application/x-www-form-urlencoded"}, 422),
    ],
)
async def test_bodies_it_declines_get_the_routes_answer(
    alice: ApiClient, answered: list[bool], body: bytes, headers: dict[str, str], status: int
) -> None:
    file = await alice.upload(b"x")
    response = await alice.request("POST", f"/api/v1/files/{file['id']}/links", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert True not in answered
    assert await links_of(alice, file["id"]) == []


async def test_refusals_fall_through_with_nothing_stored(
    alice: ApiClient, bob: ApiClient, runtime: Runtime, http: httpx.AsyncClient, answered: list[bool]
) -> None:
    file = await alice.upload(b"x")
    path = f"/api/v1/files/{file['id']}/links"
    assert (await http.post(path, json={})).status_code == 401  # no key
    assert (await http.post(path, json={}, headers={"Authorization": "Bearer lapse_nope"})).status_code == 401
    assert (await bob.request("POST", path, json={})).status_code == 404  # not bob's file
    assert (await alice.request("POST", "/api/v1/files/0123456789abcdef0123/links", json={})).status_code == 404
    async with transaction(runtime.sessions) as session:
        key = await KeyRepository(session).get_active_by_hash(keys_service.presented_key_hash(runtime.secret, bob.key))
        assert key is not None
        await keys_service.revoke_key(session, key_id=key.id, now=utc_now())
    assert (await bob.request("POST", path, json={})).status_code == 401  # revoked since
    assert answered == [False] * 5
    assert await links_of(alice, file["id"]) == []


async def test_an_admin_links_anyones_file_in_front(alice: ApiClient, admin: ApiClient, answered: list[bool]) -> None:
    file = await alice.upload(b"x")
    link = await admin.link(file["id"])
    assert answered == [True]
    assert [item["id"] for item in await links_of(alice, file["id"])] == [link["id"]]


async def test_minting_records_the_keys_use(alice: ApiClient, runtime: Runtime, answered: list[bool]) -> None:
    file = await alice.upload(b"x")
    key_hash = keys_service.presented_key_hash(runtime.secret, alice.key)
    async with transaction(runtime.sessions) as session:  # as if last used long ago
        key = await KeyRepository(session).get_active_by_hash(key_hash)
        assert key is not None
        await KeyRepository(session).touch(key.id, utc_now().replace(year=2020))
    before = utc_now()
    await alice.link(file["id"])
    assert answered == [True]
    async with transaction(runtime.sessions) as session:
        key = await KeyRepository(session).get_active_by_hash(key_hash)
    assert key is not None
    assert key.last_used_at is not None
    assert key.last_used_at >= before


async def test_refusals_in_the_same_moment_do_not_undo_the_others(
    alice: ApiClient, bob: ApiClient, answered: list[bool]
) -> None:
    """On SQLite these land in one group commit: a refused one must not roll back its neighbours."""
    file = await alice.upload(b"x")
    path = f"/api/v1/files/{file['id']}/links"
    requests = [alice.request("POST", path, json={"note": str(n)}) for n in range(12)]
    requests += [bob.request("POST", path, json={}) for _ in range(6)]  # not bob's: 404
    requests += [alice.request("POST", "/api/v1/files/00000000000000000000/links", json={}) for _ in range(6)]
    statuses = [response.status_code for response in await asyncio.gather(*requests)]
    assert statuses == [201] * 12 + [404] * 12
    assert sorted(item["note"] for item in await links_of(alice, file["id"])) == sorted(str(n) for n in range(12))


async def test_api_answers_are_never_stored_by_a_cache(
    alice: ApiClient, admin: ApiClient, http: httpx.AsyncClient, answered: list[bool]
) -> None:
    """A new link's URL and a new key are secrets: every API answer says no-store, in front and behind."""
    file = await alice.upload(b"x")
    path = f"/api/v1/files/{file['id']}/links"
    fast = await alice.request("POST", path, json={})
    framework = await alice.request("POST", path, json={"password": "pw"})
    assert answered == [True, False]
    answers = [
        fast,
        framework,
        await alice.request("GET", "/api/v1/links"),
        await admin.request("POST", "/api/v1/keys", json={"name": "ci"}),
        await http.get("/api/v1/links"),  # a 401 problem too
    ]
    assert [answer.headers.get("cache-control") for answer in answers] == ["no-store"] * 5
    download = await http.get(fast.json()["url"])
    assert download.headers["cache-control"] == "private, no-store"  # the download's own, unchanged
    assert (await http.get("/healthz")).headers.get("cache-control") is None  # not an API answer
