"""Sending a local file: streamed in fixed chunks (constant memory whatever its size), hashed on the way, and
checked against the sha256 the server computed from what it actually stored."""

import hashlib
import mimetypes
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

from lapse.client.api import LapseClient
from lapse.client.errors import ClientError, LocalFileError, VerificationFailed
from lapse.files.schemas import FileRead

CHUNK_SIZE = 1024 * 1024
Progress = Callable[[int], None]  # called with the number of bytes just sent


class HashingReader:
    """Yields exactly `size` bytes of a file and hashes them as they go by.

    The size is fixed up front because it is sent as Content-Length: a file that grows meanwhile is sent as it
    was when we started, one that shrinks is an error rather than a short upload.
    """

    def __init__(self, path: Path, size: int, on_progress: Progress) -> None:
        self.path = path
        self.size = size
        self.on_progress = on_progress
        self.sha256 = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        with self.path.open("rb") as file:
            while sent < self.size:
                chunk = file.read(min(CHUNK_SIZE, self.size - sent))
                if not chunk:
                    raise LocalFileError(f"{self.path} shrank while it was being sent.")
                self.sha256.update(chunk)
                sent += len(chunk)
                self.on_progress(len(chunk))
                yield chunk


def content_type_of(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def upload_file(client: LapseClient, path: Path, *, on_progress: Progress) -> FileRead:
    """Upload `path` under its own name. If what the server stored differs from what was read here, the upload
    is deleted again and VerificationFailed raised: no link is ever minted to damaged bytes."""
    try:
        size = path.stat().st_size
        reader = HashingReader(path, size, on_progress)
        uploaded = client.upload(path.name, reader, size=size, content_type=content_type_of(path))
    except OSError as exc:
        raise LocalFileError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if uploaded.size != size or uploaded.sha256 != reader.sha256.hexdigest():
        with suppress(ClientError):  # best effort: the error below is what the user must hear about
            client.delete_file(uploaded.id)
        raise VerificationFailed(
            f"The server stored {path.name} with a different size or sha256 than was sent; the upload was removed."
        )
    return uploaded
