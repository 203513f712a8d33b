"""/api/v1/keys: admin only; keys shown once, stored as HMACs, revocable."""

import anyio
import httpx
import pytest
from sqlalchemy import select

from lapse.db.models import ApiKey
from lapse.db.session import transaction
from lapse.keys import service as keys_service
from lapse.runtime import Runtime
from tests.helpers import ApiClient

pytestmark = pytest.mark.anyio


async def test_admin_issues_lists_and_revokes(admin: ApiClient, http: httpx.AsyncClient, runtime: Runtime) -> None:
    created = await admin.request("POST", "/api/v1/keys", json={"name": "ci <b>bot</b>"})
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("lapse_")
    assert body["admin"] is False
    new = ApiClient(http, body["key"])
    assert (await new.request("GET", "/api/v1/files")).status_code == 200

    listed = (await admin.request("GET", "/api/v1/keys")).json()["items"]
    assert body["id"] in [k["id"] for k in listed]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    assert next(k for k in listed if k["id"] == body["id"])["last_used_at"] is not None

    async with transaction(runtime.sessions) as session:
        stored = (await session.execute(select(ApiKey.key_hash))).scalars().all()
    assert body["key"] not in stored
    assert all(len(h) == 64 for h in stored)

    revoked = await admin.request("DELETE", f"/api/v1/keys/{body['id']}")
    assert revoked.json()["revoked_at"] is not None
    assert (await new.request("GET", "/api/v1/files")).status_code == 401


async def test_non_admin_is_403(alice: ApiClient) -> None:
    assert (await alice.request("GET", "/api/v1/keys")).status_code == 403
    assert (await alice.request("POST", "/api/v1/keys", json={"name": "x"})).status_code == 403


async def test_missing_or_bad_key_is_401(http: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"authorization": "Bearer nope"},
        {"authorization": "Basic Zm9vOmJhcg=="},
        {"x-api-key": ""},
    ):
        response = await http.get("/api/v1/keys", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="lapse"'
        assert response.headers["content-type"] == "application/problem+json"


async def test_revoking_unknown_key_is_404(admin: ApiClient) -> None:
    assert (await admin.request("DELETE", "/api/v1/keys/nope")).status_code == 404


async def test_first_admin_is_made_once_under_concurrency(runtime: Runtime) -> None:
    made: list[str | None] = []

    async def first() -> None:
        async with transaction(runtime.sessions) as session:
            made.append(await keys_service.create_first_admin(session, secret=runtime.secret))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(first)
    assert len([key for key in made if key is not None]) == 1
    async with transaction(runtime.sessions) as session:
        assert len(await keys_service.list_keys(session)) == 1
