"""What links.recent trusts from memory must never change once a link is made: no route may change it.

A link remembered by one worker is served (and counted) from memory: its file, name, type, hash and password hash
are not read again. The day a route can change one of them, a worker could serve an old file or skip a new
password, so these tests fail first: every route that changes an existing link or file is looked at, and the one
that changes links is sent every trusted name.
"""

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.types import ASGIApp

from lapse.app import create_app
from lapse.db.models import File, Link
from lapse.db.session import transaction
from lapse.links.recent import TRUSTED_COLUMNS, TRUSTED_FILE_COLUMNS
from lapse.runtime import Runtime
from lapse.settings import Settings
from tests.helpers import ApiClient

# A client could name a trusted column by itself or by what it is made from.
TRUSTED_NAMES = TRUSTED_COLUMNS | TRUSTED_FILE_COLUMNS | {"password", "filename", "token", "type", "file"}
CREATES_A_LINK = ("POST", "/api/v1/files/{file_id}/links")


def body_fields(openapi: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    """The property names of every schema the operation's request body takes."""
    names: set[str] = set()
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        if "$ref" in schema:
            schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        names |= set(schema.get("properties", {}))
    return names


def test_no_route_takes_a_trusted_name(settings: Settings) -> None:
    openapi = create_app(settings, sweep=False).openapi()
    looked_at = []
    for path, operations in openapi["paths"].items():
        if not {"{link_id}", "{file_id}"} & set(path.split("/")):
            continue
        for method, operation in operations.items():
            if method.upper() not in {"POST", "PUT", "PATCH"} or (method.upper(), path) == CREATES_A_LINK:
                continue  # creating a link sets its columns once; they are fixed from then on
            looked_at.append((method.upper(), path))
            changed = body_fields(openapi, operation) & TRUSTED_NAMES
            assert not changed, f"{method.upper()} {path} can change {changed}"
    assert ("PATCH", "/api/v1/links/{link_id}") in looked_at  # the walk finds the routes that change things


def trusted(link: Link, file: File) -> dict[str, Any]:
    return {c: getattr(link, c) for c in TRUSTED_COLUMNS} | {
        f"file.{c}": getattr(file, c) for c in TRUSTED_FILE_COLUMNS
    }


@pytest.mark.anyio
async def test_changing_a_link_leaves_what_is_trusted(
    app: ASGIApp, alice: ApiClient, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    link = await alice.share(b"bytes", name="a.txt", password="old-password")

    async def row() -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            stored = (await session.execute(select(Link).where(Link.id == link["id"]))).scalar_one()
            file = (await session.execute(select(File).where(File.id == stored.file_id))).scalar_one()
            return trusted(stored, file)

    before = await row()
    attempt = dict.fromkeys(TRUSTED_NAMES, "changed") | {"note": "a note", "max_downloads": 5}
    response = await alice.request("PATCH", f"/api/v1/links/{link['id']}", json=attempt)
    assert response.status_code in (200, 422), response.text
    assert await row() == before
