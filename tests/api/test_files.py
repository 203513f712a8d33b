"""/api/v1/files: uploads (multipart and raw), names, caps, listing, isolation, deletion."""

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from lapse.errors import Unavailable
from lapse.settings import Settings
from lapse.storage import LocalStorage
from tests.helpers import STORAGE_MATRIX, ApiClient, stored_files

pytestmark = pytest.mark.anyio


async def test_multipart_upload_answers_metadata(alice: ApiClient, blobs: object) -> None:
    body = os.urandom(200_000)
    file = await alice.upload(body, name="data.bin", content_type="application/octet-stream")
    assert file["size"] == len(body)
    assert file["sha256"] == hashlib.sha256(body).hexdigest()
    assert file["name"] == "data.bin"
    assert file["content_type"] == "application/octet-stream"
    assert set(file) == {"id", "name", "size", "sha256", "content_type", "created_at"}


async def test_raw_put_upload_with_link(alice: ApiClient, http: httpx.AsyncClient) -> None:
    response = await alice.request(
        "PUT",
        "/api/v1/files/notes.txt?max_downloads=3&expires_in=600",
        content=b"abc",
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["size"] == 3
    assert body["content_type"] == "text/plain"
    assert body["link"]["max_downloads"] == 3
    assert body["link"]["url"].startswith("http://testserver/d/")
    download = await http.get(httpx.URL(body["link"]["url"]).path)
    assert download.content == b"abc"


@pytest.mark.parametrize("piece", [1, 1000, None], ids=["one-byte pieces", "1000-byte pieces", "one piece"])
async def test_raw_put_is_stored_whole_however_the_body_arrives(
    alice: ApiClient, http: httpx.AsyncClient, settings: Settings, piece: int | None
) -> None:
    """The body is gathered into batches for a worker thread: no cut may lose, reorder or skip a byte."""
    data = os.urandom(settings.max_upload_size if piece != 1 else 20_000)  # 1-byte pieces: kept short, for speed
    step = piece or len(data)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), step):
            yield data[start : start + step]

    response = await alice.request("PUT", "/api/v1/files/cut.bin?max_downloads=1", content=pieces())
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert response.json()["size"] == len(data)
    download = await http.get(httpx.URL(response.json()["link"]["url"]).path)
    assert download.content == data


async def test_raw_put_without_link_params_has_no_link(alice: ApiClient) -> None:
    response = await alice.request("PUT", "/api/v1/files/a.txt", content=b"abc")
    assert response.status_code == 201
    assert response.json()["link"] is None


@STORAGE_MATRIX  # the name reaches the browser from Lapse, or forced onto the store's answer
@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        # "../../etc/passwd" is no raw-PUT name (a slash makes it another path): see test_routes_and_schema.py
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("evil\r\nX-Injected: 1.txt", "evilX-Injected: 1.txt"),
        ('quote"s;and\\slash.txt', "slash.txt"),
        ('say "hi"; filename*=x.html', 'say "hi"; filename*=x.html'),
        ("\u202eexe.txt", "exe.txt"),
        (".hidden", "hidden"),
        ("...", "download"),
        ("caf\u0065\u0301.txt", "caf\u00e9.txt"),
    ],
)
async def test_hostile_filenames_are_cleaned(alice: ApiClient, http: httpx.AsyncClient, sent: str, kept: str) -> None:
    # Raw PUT: the name reaches the server byte for byte (multipart clients percent-escape CR, LF and quotes).
    response = await alice.request("PUT", f"/api/v1/files/{quote(sent, safe='')}", content=b"x")
    assert response.status_code == 201
    file = response.json()
    assert file["name"] == kept
    link = await alice.link(file["id"])
    disposition = (await http.get(httpx.URL(link["url"]).path)).headers["content-disposition"]
    assert "\r" not in disposition
    assert "\n" not in disposition
    assert disposition.startswith('attachment; filename="')
    assert disposition.count(";") == 2  # nothing smuggled a parameter in


async def test_long_filename_keeps_its_extension(alice: ApiClient) -> None:
    file = await alice.upload(b"x", name="a" * 300 + ".tar.gz")
    assert len(file["name"]) == 255
    assert file["name"].endswith(".gz")


@STORAGE_MATRIX  # the name reaches the browser from Lapse, or forced onto the store's answer
async def test_non_ascii_name_gets_ascii_fallback(alice: ApiClient, http: httpx.AsyncClient) -> None:
    link = await alice.share(b"x", name="Résumé 履歴書.pdf")
    disposition = (await http.get(link["path"])).headers["content-disposition"]
    assert disposition == (
        "attachment; filename=\"R_sum_ ___.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%E5%B1%A5%E6%AD%B4%E6%9B%B8.pdf"
    )


async def test_over_the_cap_is_413_and_nothing_kept(alice: ApiClient, settings: Settings) -> None:
    too_big = b"x" * (settings.max_upload_size + 1)
    multipart = await alice.request("POST", "/api/v1/files", files={"file": ("big.bin", too_big)})
    assert multipart.status_code == 413
    assert multipart.headers["content-type"] == "application/problem+json"

    async def stream() -> object:
        for _ in range(3):
            yield b"y" * settings.max_upload_size  # no Content-Length: only the running count can stop it

    raw = await alice.request("PUT", "/api/v1/files/big.bin", content=stream())
    assert raw.status_code == 413
    assert stored_files(settings.data_dir / "blobs") == []
    assert (await alice.request("GET", "/api/v1/files")).json()["items"] == []


async def test_exactly_the_cap_is_accepted(alice: ApiClient, settings: Settings) -> None:
    response = await alice.request("PUT", "/api/v1/files/max.bin", content=b"z" * settings.max_upload_size)
    assert response.status_code == 201


async def test_declared_oversize_refused_before_reading(alice: ApiClient, settings: Settings) -> None:
    response = await alice.request(
        "PUT", "/api/v1/files/big.bin", content=b"abc", headers={"content-length": str(10 * 1024**3)}
    )
    assert response.status_code == 413


async def test_multipart_needs_a_file_field(alice: ApiClient) -> None:
    response = await alice.request("POST", "/api/v1/files", files={"other": ("a.txt", b"x")})
    assert response.status_code == 400
    assert "file" in response.json()["detail"]
    not_multipart = await alice.request("POST", "/api/v1/files", content=b"x", headers={"content-type": "text/plain"})
    assert not_multipart.status_code == 415


async def test_one_file_per_multipart_request(alice: ApiClient, settings: Settings) -> None:
    files = [("file", ("a.txt", b"a")), ("file", ("b.txt", b"b"))]
    response = await alice.request("POST", "/api/v1/files", files=files)
    assert response.status_code == 400
    assert (await alice.request("GET", "/api/v1/files")).json()["items"] == []


async def test_unauthenticated_upload_is_401_and_keeps_nothing(http: httpx.AsyncClient, settings: Settings) -> None:
    response = await http.post("/api/v1/files", files={"file": ("a.txt", b"x" * 100_000)})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    bad = await http.put("/api/v1/files/a.txt", content=b"x", headers={"authorization": "Bearer lapse_nope"})
    assert bad.status_code == 401
    assert stored_files(settings.data_dir / "blobs") == []


async def test_x_api_key_header_works(alice: ApiClient, http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/files", headers={"x-api-key": alice.key})
    assert response.status_code == 200


async def test_list_is_paginated_newest_first(alice: ApiClient) -> None:
    ids = [(await alice.upload(b"x", name=f"{i}.txt"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await alice.request("GET", "/api/v1/files", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    bad = await alice.request("GET", "/api/v1/files", params={"cursor": "garbage!"})
    assert bad.status_code == 400


async def test_other_owner_gets_the_same_404_as_nonexistent(alice: ApiClient, bob: ApiClient) -> None:
    file = await alice.upload(b"secret")
    link = await alice.link(file["id"])
    for method, path, missing in [
        ("GET", f"/api/v1/files/{file['id']}", "/api/v1/files/0000000000"),
        ("DELETE", f"/api/v1/files/{file['id']}", "/api/v1/files/0000000000"),
        ("GET", f"/api/v1/links/{link['id']}", "/api/v1/links/0000000000"),
        ("PATCH", f"/api/v1/links/{link['id']}", "/api/v1/links/0000000000"),
        ("DELETE", f"/api/v1/links/{link['id']}", "/api/v1/links/0000000000"),
        ("POST", f"/api/v1/files/{file['id']}/links", "/api/v1/files/0000000000/links"),
    ]:
        kwargs: dict[str, Any] = {"json": {}} if method in ("PATCH", "POST") else {}
        theirs = await bob.request(method, path, **kwargs)
        nobody = await bob.request(method, missing, **kwargs)
        assert theirs.status_code == nobody.status_code == 404, (method, path)
        assert theirs.content == nobody.content
        assert dict(theirs.headers) == dict(nobody.headers) | {"content-length": theirs.headers["content-length"]}
    assert (await bob.request("GET", "/api/v1/files")).json()["items"] == []
    assert (await bob.request("GET", "/api/v1/links")).json()["items"] == []
    assert (await alice.request("GET", f"/api/v1/files/{file['id']}")).status_code == 200


async def test_admin_sees_every_file(alice: ApiClient, admin: ApiClient) -> None:
    file = await alice.upload(b"x")
    assert (await admin.request("GET", f"/api/v1/files/{file['id']}")).status_code == 200


async def test_delete_removes_bytes_and_kills_links(
    alice: ApiClient, http: httpx.AsyncClient, settings: Settings
) -> None:
    link = await alice.share(b"bytes")
    assert len(stored_files(settings.data_dir / "blobs")) == 1
    assert (await alice.request("DELETE", f"/api/v1/files/{link['file_id']}")).status_code == 204
    assert stored_files(settings.data_dir / "blobs") == []
    assert (await alice.request("GET", f"/api/v1/files/{link['file_id']}")).status_code == 404
    assert (await http.get(link["path"])).status_code == 410
    state = (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()
    assert state["state"] == "file_deleted"
    assert state["file_id"] is None


async def test_a_delete_is_done_even_when_the_bytes_cannot_go_yet(
    alice: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row's deletion committed: the file is gone (204), its bytes wait for the sweeper as an orphan."""
    file = await alice.upload(b"stays a while")

    async def away(self: LocalStorage, key: str) -> None:
        raise Unavailable("Storage is not available right now.")

    monkeypatch.setattr(LocalStorage, "delete", away)
    response = await alice.request("DELETE", f"/api/v1/files/{file['id']}")
    assert response.status_code == 204
    assert (await alice.request("GET", f"/api/v1/files/{file['id']}")).status_code == 404
