"""A live link found once is remembered for the counted GETs that follow (links.recent): the lookup is skipped,
and every change made since — by this process or any other, through the database — is still honoured."""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from lapse.db.models import File, Link
from lapse.links.recent import RecentLinks
from lapse.links.redeemer import AsyncpgRedeemer, SqliteRedeemer
from tests.helpers import ApiClient, downloads_of, fresh_get

pytestmark = pytest.mark.anyio

BODY = b"popular bytes"
Change = Callable[[ApiClient, dict[str, Any]], Awaitable[None]]


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The token hashes every redeemer looked up (a spy around the real lookup, which still runs)."""
    seen: list[str] = []
    for cls in (SqliteRedeemer, AsyncpgRedeemer):
        real = cls.find

        async def spy(self: Any, token_hash: str, real: Any = real) -> tuple[Link, File | None] | None:
            seen.append(token_hash)
            found: tuple[Link, File | None] | None = await real(self, token_hash)
            return found

        monkeypatch.setattr(cls, "find", spy)
    return seen


async def test_a_live_link_is_looked_up_once_and_every_download_still_counted(
    alice: ApiClient, http: httpx.AsyncClient, lookups: list[str]
) -> None:
    link = await alice.share(BODY, max_downloads=10)
    for _ in range(4):
        response = await fresh_get(http, link["path"])
        assert (response.status_code, response.content) == (200, BODY)
    assert len(lookups) == 1
    assert await downloads_of(alice, link) == 4


async def _revoke(owner: ApiClient, link: dict[str, Any]) -> None:
    assert (await owner.request("DELETE", f"/api/v1/links/{link['id']}")).status_code == 200


async def _lower_the_limit(owner: ApiClient, link: dict[str, Any]) -> None:
    response = await owner.request("PATCH", f"/api/v1/links/{link['id']}", json={"max_downloads": 1})
    assert response.status_code == 200, response.text


async def _delete_the_file(owner: ApiClient, link: dict[str, Any]) -> None:
    assert (await owner.request("DELETE", f"/api/v1/files/{link['file_id']}")).status_code == 204


@pytest.mark.parametrize(
    ("change", "reason"),
    [(_revoke, "revoked"), (_lower_the_limit, "exhausted"), (_delete_the_file, "file_deleted")],
)
async def test_a_change_after_the_link_was_remembered_is_honoured_and_nothing_counted(
    alice: ApiClient, http: httpx.AsyncClient, lookups: list[str], change: Change, reason: str
) -> None:
    link = await alice.share(BODY, max_downloads=10)
    assert (await fresh_get(http, link["path"])).status_code == 200  # now remembered
    await change(alice, link)
    # The first refusal: the remembered (stale) row went to the UPDATE, which refused it; then the one fresh read
    # says why, and drops what was remembered. The second is read afresh straight away, in front and in the route.
    for expected_lookups in (1, 2):
        lookups.clear()
        refused = await fresh_get(http, link["path"])
        assert refused.status_code == 410
        assert refused.json()["reason"] == reason
        assert len(lookups) == expected_lookups
    if reason != "file_deleted":
        assert await downloads_of(alice, link) == 1


async def test_a_link_that_came_back_to_life_is_read_afresh(
    alice: ApiClient, http: httpx.AsyncClient, lookups: list[str]
) -> None:
    link = await alice.share(BODY, max_downloads=1)
    assert (await fresh_get(http, link["path"])).status_code == 200  # remembered, and now used up
    assert (await fresh_get(http, link["path"])).status_code == 410
    await alice.request("PATCH", f"/api/v1/links/{link['id']}", json={"max_downloads": 2})
    assert (await fresh_get(http, link["path"])).status_code == 200
    assert await downloads_of(alice, link) == 2


async def test_head_reads_the_link_afresh(alice: ApiClient, http: httpx.AsyncClient, lookups: list[str]) -> None:
    link = await alice.share(BODY, max_downloads=10)
    await fresh_get(http, link["path"])
    await fresh_get(http, link["path"])
    head = await http.head(link["path"])
    assert head.headers["lapse-downloads-remaining"] == "8"
    assert len(lookups) == 2  # the first GET's, and the HEAD's own
    await _revoke(alice, link)
    assert (await http.head(link["path"])).status_code == 410


async def test_a_grant_does_not_outlive_a_revocation_made_after_the_link_was_remembered(
    alice: ApiClient, http: httpx.AsyncClient, lookups: list[str]
) -> None:
    link = await alice.share(BODY, max_downloads=10)
    grant = (await fresh_get(http, link["path"])).headers["lapse-grant"]
    resumed = await fresh_get(http, link["path"], range="bytes=3-", lapse_grant=grant)
    assert (resumed.status_code, resumed.content) == (206, BODY[3:])
    await _revoke(alice, link)
    refused = await fresh_get(http, link["path"], range="bytes=3-", lapse_grant=grant)
    assert refused.status_code == 410
    assert refused.json()["reason"] == "revoked"
    assert await downloads_of(alice, link) == 1


async def test_a_link_alive_only_for_a_grants_holder_is_not_remembered(
    alice: ApiClient, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept: list[Link] = []
    keep = RecentLinks.keep

    def spy(self: RecentLinks, token_hash: str, link: Link, file: File) -> None:
        kept.append(link)
        keep(self, token_hash, link, file)

    monkeypatch.setattr(RecentLinks, "keep", spy)
    link = await alice.share(BODY, max_downloads=1)
    grant = (await fresh_get(http, link["path"])).headers["lapse-grant"]  # its one download: now used up
    kept.clear()
    resumed = await fresh_get(http, link["path"], range="bytes=3-", lapse_grant=grant)
    assert (resumed.status_code, resumed.content) == (206, BODY[3:])
    assert kept == []
