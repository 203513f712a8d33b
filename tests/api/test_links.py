"""/api/v1/links: expiry policy, limits, changes, revocation, listing."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from lapse.settings import Settings
from tests.helpers import ApiClient

pytestmark = pytest.mark.anyio


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_new_link_answers_its_state(alice: ApiClient) -> None:
    file = await alice.upload(b"x")
    link = await alice.link(file["id"], max_downloads=3, note="for Carol")
    assert link["url"].startswith("http://testserver/d/")
    assert len(link["url"].rsplit("/", 1)[1]) >= 22  # ≥ 128 bits of base64url
    assert link | {"url": None} == link | {
        "url": None,
        "file_id": file["id"],
        "max_downloads": 3,
        "downloads": 0,
        "remaining": 3,
        "state": "active",
        "has_password": False,
        "note": "for Carol",
        "revoked_at": None,
    }
    read = (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()
    assert read["url"] is None  # the token is not stored, so it cannot be shown again
    assert read["page_url"] is None


async def test_new_link_also_answers_its_landing_page_which_never_counts(
    alice: ApiClient, http: httpx.AsyncClient
) -> None:
    file = await alice.upload(b"x")
    link = await alice.link(file["id"], max_downloads=1)
    token = link["url"].rsplit("/", 1)[1]
    assert link["page_url"] == f"http://testserver/s/{token}"
    for _ in range(3):  # what a chat preview would do
        assert (await http.get(link["page_url"])).status_code == 200
    assert (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()["downloads"] == 0


async def test_default_and_maximum_ttl(alice: ApiClient, settings: Settings) -> None:
    file = await alice.upload(b"x")
    before = datetime.now(UTC)
    default = await alice.link(file["id"])
    assert abs(parse(default["expires_at"]) - (before + settings.default_ttl)) < timedelta(seconds=5)
    capped = await alice.link(file["id"], expires_in=10 * 365 * 86400)
    assert abs(parse(capped["expires_at"]) - (before + settings.max_ttl)) < timedelta(seconds=5)
    far = (before + timedelta(days=3650)).isoformat()
    assert abs(
        parse((await alice.link(file["id"], expires_at=far))["expires_at"]) - (before + settings.max_ttl)
    ) < timedelta(seconds=5)
    exact = (before + timedelta(hours=5)).replace(microsecond=0)
    assert parse((await alice.link(file["id"], expires_at=exact.isoformat()))["expires_at"]) == exact


@pytest.mark.parametrize(
    "body",
    [
        {"max_downloads": 0},
        {"max_downloads": -1},
        {"expires_in": 0},
        {"expires_in": 60, "expires_at": "2030-01-01T00:00:00Z"},
        {"expires_at": "2030-01-01T00:00:00"},  # no zone: ambiguous
        {"note": "x" * 1001},
        {"password": ""},
    ],
)
async def test_invalid_link_requests_are_422(alice: ApiClient, body: dict[str, object]) -> None:
    file = await alice.upload(b"x")
    response = await alice.request("POST", f"/api/v1/files/{file['id']}/links", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


async def test_expiry_in_the_past_is_refused(alice: ApiClient) -> None:
    file = await alice.upload(b"x")
    response = await alice.request(
        "POST", f"/api/v1/files/{file['id']}/links", json={"expires_at": "2001-01-01T00:00:00Z"}
    )
    assert response.status_code == 400


async def test_password_is_not_echoed_in_errors(alice: ApiClient) -> None:
    file = await alice.upload(b"x")
    response = await alice.request(
        "POST", f"/api/v1/files/{file['id']}/links", json={"password": "hunter2-secret", "max_downloads": 0}
    )
    assert response.status_code == 422
    assert "hunter2-secret" not in response.text


async def test_patch_extends_and_changes_the_limit(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(b"x", max_downloads=1)
    await http.get(link["path"])
    http.cookies.clear()
    assert (await http.get(link["path"])).status_code == 410
    raised = await alice.request("PATCH", f"/api/v1/links/{link['id']}", json={"max_downloads": 2, "expires_in": 7200})
    assert raised.status_code == 200
    assert raised.json()["state"] == "active"
    assert raised.json()["remaining"] == 1
    assert (await http.get(link["path"])).status_code == 200
    http.cookies.clear()
    unlimited = await alice.request("PATCH", f"/api/v1/links/{link['id']}", json={"max_downloads": None})
    assert unlimited.json()["remaining"] is None
    lowered = await alice.request("PATCH", f"/api/v1/links/{link['id']}", json={"max_downloads": 1})
    assert lowered.json()["state"] == "exhausted"
    assert (await http.get(link["path"])).status_code == 410


async def test_patch_can_shorten_to_expired(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(b"x")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await alice.request("PATCH", f"/api/v1/links/{link['id']}", json={"expires_at": past})
    assert response.json()["state"] == "expired"
    assert (await http.get(link["path"])).status_code == 410


async def test_revoke_is_final(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(b"x")
    revoked = await alice.request("DELETE", f"/api/v1/links/{link['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    assert revoked.json()["revoked_at"] is not None
    response = await http.get(link["path"])
    assert response.status_code == 410
    assert response.json()["reason"] == "revoked"
    again = await alice.request("PATCH", f"/api/v1/links/{link['id']}", json={"expires_in": 600})
    assert again.status_code == 410


async def test_list_links_by_file(alice: ApiClient) -> None:
    one = await alice.upload(b"1")
    two = await alice.upload(b"2")
    first = await alice.link(one["id"])
    await alice.link(two["id"])
    everything = (await alice.request("GET", "/api/v1/links")).json()
    assert len(everything["items"]) == 2
    only = (await alice.request("GET", "/api/v1/links", params={"file_id": one["id"]})).json()
    assert [item["id"] for item in only["items"]] == [first["id"]]
    assert only["next_cursor"] is None
