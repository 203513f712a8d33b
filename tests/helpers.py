"""Small helpers the tests share: an API client that knows its key, and blob counting."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lapse.db.session import transaction
from lapse.keys import service as keys_service
from lapse.runtime import Runtime


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


async def new_key(runtime: Runtime, name: str, *, admin: bool = False) -> str:
    """Issue an API key through the service, as `lapse keys create` does."""
    async with transaction(runtime.sessions) as session:
        _, raw = await keys_service.create_key(session, secret=runtime.secret, name=name, admin=admin)
    return raw
