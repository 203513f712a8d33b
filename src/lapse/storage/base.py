"""The storage protocol: what the services need from a place that keeps bytes (httpx's transport ABC is the model)."""

from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


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


class Storage(Protocol):
    async def write(self, chunks: AsyncIterable[bytes], *, max_size: int) -> StoredBlob:
        """Store the stream durably under a new key; raise TooLarge past max_size, keeping nothing."""

    async def delete(self, key: str) -> None:
        """Remove a blob or temp file; a missing one is not an error."""

    async def list_blobs(self) -> list[BlobInfo]:
        """Every blob and temp file, for the sweeper."""

    async def check(self) -> None:
        """Raise Unavailable unless the storage can be written now."""

    def local_path(self, key: str) -> Path | None:
        """A path the server can send from directly, when the storage is a local folder."""
