"""Talking to a real server over HTTP: cookie-less clients, uploads, link and file reads, raw sockets."""

from collections.abc import Callable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import anyio
import anyio.to_thread
import httpx
from anyio.abc import SocketStream

from tests.helpers import stored_files

__all__ = [
    "bearer",
    "downloads_counted",
    "eventually",
    "fresh_client",
    "link_info",
    "list_files",
    "read_response_head",
    "share",
    "shared_link",
    "stored_files",
]


def fresh_client(base_url: str, **kwargs: Any) -> httpx.AsyncClient:
    """A client that never keeps a cookie, so every request it sends is a stranger's: a grant cookie from one
    answer can never let a later request through uncounted (and `Lapse-Grant` goes only where a test puts it)."""
    refuse_all = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    options: dict[str, Any] = {"timeout": 60.0, "trust_env": False} | kwargs
    return httpx.AsyncClient(base_url=base_url, cookies=refuse_all, **options)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def share(client: httpx.AsyncClient, key: str, data: bytes, name: str, **link: Any) -> dict[str, Any]:
    """PUT the bytes with link parameters in the query; answers the file, whose `link` has its `path` added."""
    response = await client.put(f"/api/v1/files/{name}", params=link, content=data, headers=bearer(key))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["size"] == len(data)
    assert body["link"] is not None, body
    body["link"]["path"] = httpx.URL(body["link"]["url"]).path
    return body


async def link_info(client: httpx.AsyncClient, key: str, link_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/links/{link_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def shared_link(base_url: str, key: str, data: bytes, **link: Any) -> dict[str, Any]:
    """`share` from a client of its own: the new link, with its `path`."""
    async with fresh_client(base_url) as client:
        shared: dict[str, Any] = (await share(client, key, data, "data.bin", **link))["link"]
        return shared


async def downloads_counted(base_url: str, key: str, link: dict[str, Any]) -> int:
    async with fresh_client(base_url) as client:
        count: int = (await link_info(client, key, link["id"]))["downloads"]
        return count


async def list_files(client: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/files", headers=bearer(key))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def read_response_head(stream: SocketStream) -> tuple[str, dict[str, str]]:
    """Read an HTTP/1.1 status line and headers off a raw socket (bound it with `anyio.fail_after`).
    Answers the status line and the headers, names lower-cased."""
    received = b""
    while b"\r\n\r\n" not in received:
        try:
            received += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            break  # closed (or reset) after answering: what arrived is all there is
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def eventually(check: Callable[[], bool], *, interval: float = 0.02) -> None:
    """Poll a condition that nothing announces (files on disk, another process's state) until it holds; run it
    on a thread since it may touch the disk. Bound it with `anyio.fail_after`."""
    while True:
        if await anyio.to_thread.run_sync(check):
            return
        await anyio.sleep(interval)
