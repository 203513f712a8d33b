"""Against a real server: no request body is read before the caller is known, and a JSON body is capped while it
arrives. `Expect: 100-continue` makes "read" observable: the server sends `100 Continue` only when the app first
asks for the body, so an answer with no `100 Continue` before it proves not a byte was wanted."""

import os
import re
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from lapse.api.deps import MAX_JSON_BODY
from tests.server.api import fresh_client, read_response_head
from tests.server.services import Service, service

pytestmark = [pytest.mark.anyio, pytest.mark.server]

HUGE = 64 * 1024 * 1024
SOME_ID = "0" * 32  # hex, as ids are: it reaches every route (the link fast path included)
# The web page's POST routes that need a session (sign-in is how one gets a session, so it takes none).
WEB_POSTS = [
    "/ui/files",
    f"/ui/files/{SOME_ID}/delete",
    f"/ui/files/{SOME_ID}/links",
    f"/ui/links/{SOME_ID}/revoke",
    "/ui/keys",
    f"/ui/keys/{SOME_ID}/revoke",
    "/ui/sign-out",
]
JSON_ROUTES = [
    ("POST", "/api/v1/keys"),
    ("POST", f"/api/v1/files/{SOME_ID}/links"),
    ("PATCH", f"/api/v1/links/{SOME_ID}"),
]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with service("sqlite", tmp_path_factory.mktemp("body-guard"), admin=True) as server:
        yield server


def _head(method: str, path: str, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _answer(port: int, head: bytes, body: bytes = b"") -> tuple[list[str], dict[str, str]]:
    """Send the head (and whatever body) and never the rest; answers every status line seen, up to the first
    final one, and that one's headers. No answer within 5 s means the server is waiting for the body."""
    statuses: list[str] = []
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head + body)
        try:
            with anyio.fail_after(5):
                while True:
                    status, headers = await read_response_head(stream)
                    statuses.append(status)
                    if not status.startswith("HTTP/1.1 100 "):
                        return statuses, headers
        except TimeoutError:
            pytest.fail(f"no final answer within 5 s (saw {statuses}): the server is waiting for the body")


def _api_operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    operations: list[tuple[str, str]] = []
    for template, methods in schema["paths"].items():
        if template.startswith("/api/"):
            path = re.sub(r"\{[^}]+\}", SOME_ID, template)
            operations.extend((method.upper(), path) for method in methods)
    return operations


async def test_no_key_is_refused_before_the_body_on_every_api_route(running: Service) -> None:
    async with fresh_client(running.url) as client:
        operations = _api_operations((await client.get("/openapi.json")).json())
    assert {("POST", "/api/v1/keys"), ("PUT", f"/api/v1/files/{SOME_ID}")} <= set(operations)
    for method, path in operations:
        head = _head(
            method,
            path,
            running.server.port,
            {"Content-Type": "application/json", "Content-Length": str(HUGE), "Expect": "100-continue"},
        )
        statuses, headers = await _answer(running.server.port, head)
        assert statuses == [statuses[-1]], f"{method} {path}: asked for the body first: {statuses}"
        assert statuses[-1].startswith("HTTP/1.1 401 "), f"{method} {path}: {statuses}"
        assert headers["content-type"] == "application/problem+json"
        assert headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", WEB_POSTS)
async def test_no_session_is_refused_before_the_body_on_the_web_page(running: Service, path: str) -> None:
    head = _head(
        "POST",
        path,
        running.server.port,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(HUGE),
            "Expect": "100-continue",
            "Origin": running.url,
        },
    )
    statuses, _ = await _answer(running.server.port, head)
    assert statuses == [statuses[-1]], f"asked for the body first: {statuses}"
    assert statuses[-1].startswith("HTTP/1.1 401 "), statuses


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
async def test_a_declared_oversize_json_body_is_413_before_it_is_read(running: Service, method: str, path: str) -> None:
    head = _head(
        method,
        path,
        running.server.port,
        {
            **running.auth,
            "Content-Type": "application/json",
            "Content-Length": str(HUGE),
            "Expect": "100-continue",
        },
    )
    statuses, headers = await _answer(running.server.port, head)
    assert statuses == [statuses[-1]], f"asked for the body first: {statuses}"
    assert statuses[-1].startswith("HTTP/1.1 413 "), statuses
    assert headers["content-type"] == "application/problem+json"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
async def test_a_streamed_json_body_is_cut_off_at_the_cap(running: Service, method: str, path: str) -> None:
    # Chunked, so no length is declared: only counting while reading can catch it. The body never ends, so an
    # answer at all proves the server stopped reading at the cap.
    head = _head(
        method,
        path,
        running.server.port,
        {**running.auth, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    body = _chunk(b'{"note": "') + b"".join(_chunk(os.urandom(8 * 1024).hex().encode()) for _ in range(16))
    assert len(body) > 2 * MAX_JSON_BODY
    statuses, headers = await _answer(running.server.port, head, body)
    assert statuses[-1].startswith("HTTP/1.1 413 "), statuses
    assert headers["content-type"] == "application/problem+json"


async def test_json_bodies_under_the_cap_still_work(running: Service) -> None:
    async with fresh_client(running.url, headers=running.auth) as client:
        made = await client.post("/api/v1/keys", json={"name": "n" * 200})
        assert made.status_code == 201, made.text
        too_long = await client.post("/api/v1/keys", json={"name": "n" * 201})
        assert too_long.status_code == 422, too_long.text
        upload = await client.put("/api/v1/files/a.txt", content=b"a")
        assert upload.status_code == 201, upload.text
        file_id = upload.json()["id"]
        link = await client.post(f"/api/v1/files/{file_id}/links", json={"note": "x" * 1000})
        assert link.status_code == 201, link.text
        changed = await client.patch(f"/api/v1/links/{link.json()['id']}", json={"max_downloads": 3})
        assert changed.status_code == 200, changed.text
        assert changed.json()["max_downloads"] == 3
        # Just under the cap is read and judged (a note too long), not refused for its size.
        padded = b'{"note": "' + b"x" * (MAX_JSON_BODY - 20) + b'"}'
        judged = await client.post(
            f"/api/v1/files/{file_id}/links", content=padded, headers={"Content-Type": "application/json"}
        )
        assert judged.status_code == 422, judged.text
