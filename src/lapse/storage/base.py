"""The storage protocol: what the services need from a place that keeps bytes (httpx's transport ABC is the model).

A backend stores each upload under a new random key and never changes a blob once stored, so anything read by key
(sizes, small bodies kept in memory) stays true for as long as the key exists. The download service
(links.download) is the only reader; it never asks which backend it has:

- `stat` before counting: the size, and the whole body when it is small (sent from memory, kept by key);
- `open` before counting: a blob the response then reads — a local file (sent zero-copy) or a stream of ranges;
  whatever can fail (the blob missing, no descriptors left) fails here, before a download is spent;
- for `LAPSE_DELIVERY=accel`, `accel_path` (a file below nginx's blob location; sync: the hot path of a local
  folder) or else `accel_proxy` (a presigned request nginx makes to the store), and `presign` for a redirect; each
  None where the backend cannot offer one, and the service then sends the bytes itself.
"""

import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

SMALL_BLOB = 64 * 1024  # read together with the stat and sent in one message


def new_key() -> str:
    """A fresh storage key: chosen by the caller before any byte is stored, so an upload's intent can name it."""
    return secrets.token_hex(16)


def is_key(name: str) -> bool:
    """Whether `name` is a key `new_key` could have made (nothing else is ever ours to delete)."""
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


@dataclass(frozen=True, slots=True)
class StoredBlob:
    key: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    modified_at: datetime
    temporary: bool  # an upload in progress, or one a crash left behind


@dataclass(frozen=True, slots=True)
class BlobStat:
    size: int
    body: bytes | None = None  # the whole blob, when it is at most SMALL_BLOB


@dataclass(frozen=True, slots=True)
class LocalFile:
    """An open file the server can hand to `sendfile`, with the path and stat FileResponse wants."""

    file: BinaryIO
    path: Path
    stat: os.stat_result


class OpenBlob(Protocol):
    """A blob opened for reading before its download was counted. Whoever sends it closes it."""

    def local(self) -> LocalFile | None:
        """The open local file, when the backend has one (then the server sends it zero-copy)."""

    def chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start` to `end` inclusive, in pieces of bounded size."""

    def close(self) -> None: ...


class Storage(Protocol):
    async def put(self, key: str, chunks: AsyncIterable[bytes], *, max_size: int) -> StoredBlob:
        """Store the stream durably under `key` (from `new_key`), hashing it on the way; raise TooLarge past
        max_size, keeping nothing. Returns only once the blob would survive a crash."""

    async def stat(self, key: str) -> BlobStat:
        """The blob's size, and its bytes when small; Unavailable when it cannot be read now."""

    async def open(self, key: str) -> OpenBlob:
        """The blob, opened for reading; Unavailable when it cannot be."""

    async def delete(self, key: str) -> None:
        """Remove a blob or temp file; a missing one is not an error."""

    async def abandon(self, key: str) -> None:
        """Remove whatever an upload under `key` left, finished or not: the blob, and a temp file or unfinished
        multipart upload. Nothing there is not an error."""

    def scan(self) -> AsyncIterator[list[BlobInfo]]:
        """Every blob and unfinished upload (`temporary`), a page at a time, for the sweeper's safety net."""

    async def check(self) -> None:
        """Raise Unavailable unless the storage can be written now."""

    def accel_path(self, key: str) -> str | None:
        """Where nginx finds the blob below its internal location, or None when nginx cannot serve it."""

    async def accel_proxy(self, key: str, *, until: datetime, content_type: str) -> str | None:
        """What nginx asks the store for, below its store-proxy location: `<bucket>/<key>?<presigned query>`,
        path-style, for a GET that answers with `content_type` and is refused after `until` (or sooner); or None
        when the backend has no store to proxy.
        Asked before counting: Unavailable while the store is known to be down."""

    async def presign(self, key: str, *, until: datetime, filename: str, content_type: str) -> str | None:
        """A URL that serves the blob without Lapse, refused after `until` (or sooner), or None when the backend
        has none."""

    async def aclose(self) -> None: ...
