"""Files bigger than SMALL_BLOB stream from disk (or the bucket); smaller ones go out in one message. Same answers,
in every storage mode."""

import os

import httpx
import pytest

from lapse.storage.base import SMALL_BLOB
from tests.helpers import STORAGE_MATRIX, ApiClient, lapse_answer

pytestmark = [pytest.mark.anyio, STORAGE_MATRIX]

BIG = os.urandom(SMALL_BLOB * 3 + 123)
SMALL = os.urandom(SMALL_BLOB)


@pytest.mark.parametrize("body", [BIG, SMALL], ids=["streamed", "preloaded"])
async def test_full_single_range_and_multipart(
    alice: ApiClient, http: httpx.AsyncClient, body: bytes, storage_mode: str
) -> None:
    link = await alice.share(body)
    full = await http.get(link["path"])
    assert full.status_code == 200
    assert full.content == body
    assert full.headers["content-length"] == str(len(body))
    assert lapse_answer(full).headers["x-content-type-options"] == "nosniff"
    grant = lapse_answer(full).headers["lapse-grant"]

    start = len(body) // 2
    half = await http.get(link["path"], headers={"range": f"bytes={start}-", "lapse-grant": grant})
    assert half.status_code == 206
    assert half.content == body[start:]
    assert half.headers["content-range"] == f"bytes {start}-{len(body) - 1}/{len(body)}"

    suffix = await http.get(link["path"], headers={"range": "bytes=-10", "lapse-grant": grant})
    assert suffix.status_code == 206
    assert suffix.content == body[-10:]

    multi = await http.get(link["path"], headers={"range": "bytes=0-9,20-29", "lapse-grant": grant})
    if storage_mode == "local":
        assert multi.status_code == 206
        assert multi.headers["content-type"].startswith("multipart/byteranges")
        assert body[:10] in multi.content
        assert body[20:30] in multi.content
    else:  # a blob in a bucket is sent whole rather than in parts (RFC 9110 allows either), and by Lapse
        assert (multi.status_code, multi.content, multi.history) == (200, body, [])

    head = await http.head(link["path"])
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(body))
    assert head.content == b""
    assert (await alice.request("GET", f"/api/v1/links/{link['id']}")).json()["downloads"] == 1
