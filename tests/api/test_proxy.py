"""Link URLs and the client address behind a reverse proxy: honoured only from LAPSE_TRUSTED_PROXIES."""

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from lapse.app import create_app
from lapse.runtime import Runtime
from lapse.settings import Settings
from tests.helpers import ApiClient

pytestmark = pytest.mark.anyio

FORWARDED = {
    "x-forwarded-proto": "https",
    "x-forwarded-host": "files.example.org",
    "x-forwarded-prefix": "/lapse",
}


async def test_trusted_proxy_shapes_link_urls(alice: ApiClient) -> None:
    file = await alice.upload(b"x")
    response = await alice.request("POST", f"/api/v1/files/{file['id']}/links", json={}, headers=FORWARDED)
    assert response.json()["url"].startswith("https://files.example.org/lapse/d/")


@pytest.fixture
async def untrusted_http(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_untrusted_peer_cannot_forge_forwarded_headers(
    untrusted_http: httpx.AsyncClient, alice: ApiClient
) -> None:
    stranger = ApiClient(untrusted_http, alice.key)
    file = await stranger.upload(b"x")
    response = await stranger.request("POST", f"/api/v1/files/{file['id']}/links", json={}, headers=FORWARDED)
    assert response.json()["url"].startswith("http://testserver/d/")
    download = await untrusted_http.get(httpx.URL(response.json()["url"]).path, headers=FORWARDED)
    assert "Secure" not in download.headers["set-cookie"]


async def test_public_url_wins(settings: Settings, runtime: Runtime, alice: ApiClient) -> None:
    app = create_app(settings.model_copy(update={"public_url": "https://dl.example.com/x/"}), sweep=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as http:
            owner = ApiClient(http, alice.key)
            file = await owner.upload(b"x")
            link = await owner.link(file["id"])
    assert link["url"].startswith("https://dl.example.com/x/d/")
