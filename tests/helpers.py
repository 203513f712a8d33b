"""Small helpers the tests share: an API client that knows its key, and blob counting."""

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lapse.db.session import transaction
from lapse.keys import service as keys_service
from lapse.runtime import Runtime

TEST_SECRET = "test-secret-" + "x" * 40


@dataclass
class ApiClient:
    http: httpx.AsyncClient
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def upload(self, content: bytes, name: str = "hello.txt", content_type: str = "text/plain") -> dict[str, Any]:
        response = await self.request("POST", "/api/v1/files", files={"file": (name, content, content_type)})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def link(self, file_id: str, **params: Any) -> dict[str, Any]:
        response = await self.request("POST", f"/api/v1/files/{file_id}/links", json=params)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def share(self, content: bytes, name: str = "hello.txt", **params: Any) -> dict[str, Any]:
        """Upload and mint a link; answers the link with `path` (the URL's path) added."""
        file = await self.upload(content, name)
        link = await self.link(file["id"], **params)
        link["path"] = httpx.URL(link["url"]).path
        return link


def stored_files(root: Path) -> list[Path]:
    """Every regular file under the blob folder: blobs and temp files alike."""
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def downloads_of(owner: ApiClient, link: dict[str, Any]) -> int:
    response = await owner.request("GET", f"/api/v1/links/{link['id']}")
    count: int = response.json()["downloads"]
    return count


async def fresh_get(http: httpx.AsyncClient, path: str, **headers: str) -> httpx.Response:
    """A request with no grant cookie: the client a recipient would be."""
    http.cookies.clear()
    return await http.get(path, headers={name.replace("_", "-"): value for name, value in headers.items()})


async def new_key(runtime: Runtime, name: str, *, admin: bool = False) -> str:
    """Issue an API key through the service, as `lapse keys create` does."""
    async with transaction(runtime.sessions) as session:
        _, raw = await keys_service.create_key(session, secret=runtime.secret, name=name, admin=admin)
    return raw


def free_port() -> int:
    """A TCP port nobody listens on right now (another process may take it before we do: callers retry)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
