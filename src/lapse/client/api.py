"""The Lapse HTTP API (v1) as a small synchronous client.

Answers are parsed into the server's own schemas, so client and server cannot drift apart silently; every failure
leaves as a `lapse.client.errors.ClientError`, never as an httpx or pydantic exception.
"""

from collections.abc import Iterable, Iterator
from importlib.metadata import version
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from lapse.client.config import Credentials
from lapse.client.errors import ServerError, connection_error, error_for
from lapse.files.schemas import FileList, FileRead
from lapse.links.schemas import LinkCreate, LinkList, LinkRead, LinkUpdate

M = TypeVar("M", bound=BaseModel)

PAGE_SIZE = 200  # the server's largest page: fewest round trips
# Generous reads: after the last byte of a big upload the server still fsyncs it before answering.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
USER_AGENT = f"lapse-cli/{version('lapse')}"


class LapseClient:
    """One server, one key. Use as a context manager so the connection pool is closed."""

    def __init__(self, credentials: Credentials, *, transport: httpx.BaseTransport | None = None) -> None:
        self.server = credentials.server
        self._http = httpx.Client(
            base_url=credentials.server + "/",
            headers={"Authorization": f"Bearer {credentials.key}", "User-Agent": USER_AGENT},
            timeout=TIMEOUT,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._http.close()

    def _request(self, method: str, path: str, *, what: str = "resource", **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise connection_error(exc, self.server) from exc
        if not response.is_success:
            raise error_for(response, what=what)
        return response

    @staticmethod
    def _parse(model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise ServerError(
                f"The server's answer to {response.request.method} {response.request.url.path} is not what Lapse "
                "sends; is this a Lapse server?",
                status=response.status_code,
            ) from exc

    def check(self) -> None:
        """Raise Unauthorized unless the key is good (the cheapest authenticated request there is)."""
        self._request("GET", "api/v1/files", params={"limit": 1})

    # Files

    def upload(self, name: str, chunks: Iterable[bytes], *, size: int, content_type: str) -> FileRead:
        """PUT the raw bytes, streamed. Content-Length is given so that the server refuses an oversized file
        before reading it, and so that httpx sends the body as it comes instead of chunk-encoding it."""
        response = self._request(
            "PUT",
            f"api/v1/files/{quote(name, safe='')}",
            content=chunks,
            headers={"Content-Length": str(size), "Content-Type": content_type},
        )
        return self._parse(FileRead, response)

    def files(self) -> Iterator[FileRead]:
        """Every file this key may see, newest first, fetched a page at a time as the caller iterates."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": PAGE_SIZE} | ({"cursor": cursor} if cursor else {})
            page = self._parse(FileList, self._request("GET", "api/v1/files", params=params))
            yield from page.items
            if (cursor := page.next_cursor) is None:
                return

    def file(self, file_id: str) -> FileRead:
        return self._parse(FileRead, self._request("GET", f"api/v1/files/{quote(file_id, safe='')}", what="file"))

    def delete_file(self, file_id: str) -> None:
        self._request("DELETE", f"api/v1/files/{quote(file_id, safe='')}", what="file")

    # Links

    def create_link(self, file_id: str, terms: LinkCreate) -> LinkRead:
        """Mint a link; only this answer carries its URL."""
        body = terms.model_dump(mode="json", exclude_none=True)
        response = self._request("POST", f"api/v1/files/{quote(file_id, safe='')}/links", json=body, what="file")
        return self._parse(LinkRead, response)

    def links(self, *, file_id: str | None = None) -> Iterator[LinkRead]:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": PAGE_SIZE}
            params |= {"cursor": cursor} if cursor else {}
            params |= {"file_id": file_id} if file_id else {}
            page = self._parse(LinkList, self._request("GET", "api/v1/links", params=params, what="file"))
            yield from page.items
            if (cursor := page.next_cursor) is None:
                return

    def link(self, link_id: str) -> LinkRead:
        return self._parse(LinkRead, self._request("GET", f"api/v1/links/{quote(link_id, safe='')}", what="link"))

    def update_link(self, link_id: str, changes: LinkUpdate) -> LinkRead:
        """Send only the fields that were set: `max_downloads=None` set explicitly means unlimited."""
        body = changes.model_dump(mode="json", exclude_unset=True)
        response = self._request("PATCH", f"api/v1/links/{quote(link_id, safe='')}", json=body, what="link")
        return self._parse(LinkRead, response)

    def revoke_link(self, link_id: str) -> LinkRead:
        return self._parse(LinkRead, self._request("DELETE", f"api/v1/links/{quote(link_id, safe='')}", what="link"))
